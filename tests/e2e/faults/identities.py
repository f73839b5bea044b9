"""ServiceAccount identities for fault tests: throttled, unauthorised, authorised later.

The admin kubeconfig authenticates as ``system:masters``, which API Priority and
Fairness never throttles (the exempt priority level) and RBAC never denies, so a
component under a fault test needs an identity of its own: a ServiceAccount with
a token.
"""

from __future__ import annotations

from pathlib import Path

from tests.controlplane import Cluster

CLUSTER_ADMIN = "cluster-admin"


def binding_name(namespace: str, name: str) -> str:
    """The ClusterRoleBinding grant_cluster_admin() creates for that ServiceAccount."""
    return f"faults-{namespace}-{name}-{CLUSTER_ADMIN}"


def service_account_kubeconfig(
    cluster: Cluster,
    namespace: str,
    name: str,
    dest: Path,
    *,
    cluster_admin: bool,
    duration: str = "1h",
) -> Cluster:
    """Create the ServiceAccount (and namespace) if missing and write a token kubeconfig.

    Without ``cluster_admin`` the account has no binding at all, so every list is
    403 Forbidden: the "RBAC not applied yet" case; grant_cluster_admin() fixes
    that later. Returns the cluster as seen with that token; its kubeconfig is
    ``dest``.
    """
    _create(cluster, "namespace", namespace)
    _create(cluster, "serviceaccount", name, "-n", namespace)
    if cluster_admin:
        grant_cluster_admin(cluster, namespace, name)
    token = cluster.create_token(namespace, name, duration=duration)
    return cluster.as_token(token, dest)


def grant_cluster_admin(cluster: Cluster, namespace: str, name: str) -> str:
    """Bind the ServiceAccount to cluster-admin; returns the ClusterRoleBinding's name.

    RBAC changes reach the authoriser through an informer, so the first requests
    right after this may still be denied; poll for the permission you need.
    """
    binding = binding_name(namespace, name)
    _create(
        cluster,
        "clusterrolebinding",
        binding,
        f"--clusterrole={CLUSTER_ADMIN}",
        f"--serviceaccount={namespace}:{name}",
    )
    return binding


def _create(cluster: Cluster, *args: str) -> None:
    """``kubectl create`` that tolerates an existing object, so helpers can be re-run."""
    result = cluster.kubectl("create", *args)
    if result.returncode != 0 and "AlreadyExists" not in result.stderr:
        raise RuntimeError(f"kubectl create {' '.join(args)}: {result.stderr.strip()}")
