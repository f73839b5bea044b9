"""The control plane behaves like a real cluster where the operator will depend on it.

These need no project CRDs, so they stay meaningful even while crds/ is broken.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.controlplane import CRD_DIR, Cluster

RBAC_PROPAGATION_TIMEOUT = 10.0


def test_server_runs_the_pinned_kubernetes_version(kube_cluster: Cluster) -> None:
    versions = json.loads(kube_cluster.kubectl("version", "-o", "json", check=True).stdout)
    server = versions["serverVersion"]["gitVersion"]
    if kube_cluster.pinned_version is None:  # an external cluster runs whatever it runs
        assert server.startswith("v1."), server
    else:
        assert server == kube_cluster.pinned_version
        assert versions["clientVersion"]["gitVersion"] == kube_cluster.pinned_version


def _eventually_succeeds(cluster: Cluster, *args: str) -> None:
    """RBAC changes reach the authorizer through an informer, so allow a moment."""
    deadline = time.monotonic() + RBAC_PROPAGATION_TIMEOUT
    while (result := cluster.kubectl(*args)).returncode != 0:
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.2)


def test_service_account_token_is_subject_to_rbac(
    kube_cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    kube_cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace, check=True)
    token = kube_cluster.create_token(namespace, "reader")
    reader = kube_cluster.as_token(token, tmp_path / "reader.kubeconfig")

    whoami = json.loads(reader.kubectl("auth", "whoami", "-o", "json", check=True).stdout)
    assert whoami["status"]["userInfo"]["username"] == (f"system:serviceaccount:{namespace}:reader")

    denied = reader.kubectl("get", "configmaps", "-n", namespace)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr

    kube_cluster.kubectl(
        "create", "role", "read-configmaps", "--verb=get,list", "--resource=configmaps",
        "-n", namespace, check=True,
    )  # fmt: skip
    kube_cluster.kubectl(
        "create", "rolebinding", "reader", "--role=read-configmaps",
        f"--serviceaccount={namespace}:reader", "-n", namespace, check=True,
    )  # fmt: skip
    _eventually_succeeds(reader, "get", "configmaps", "-n", namespace)

    # The binding grants exactly what it names.
    still_denied = reader.kubectl("get", "secrets", "-n", namespace)
    assert still_denied.returncode != 0
    assert "forbidden" in still_denied.stderr


def test_token_request_api_through_the_python_client(kube_cluster: Cluster, namespace: str) -> None:
    with kube_cluster.api_client() as admin:
        core = client.CoreV1Api(admin)
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="operator"))
        )
        request = core.create_namespaced_service_account_token(
            "operator",
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
            ),
        )
        assert request.status is not None
        as_service_account = client.Configuration()
        as_service_account.host = admin.configuration.host
        as_service_account.ssl_ca_cert = admin.configuration.ssl_ca_cert
        as_service_account.api_key = {"authorization": f"Bearer {request.status.token}"}

    with client.ApiClient(as_service_account) as operator:
        review = client.AuthenticationV1Api(operator).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        assert review.status is not None
        assert review.status.user_info is not None
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:operator"
        with pytest.raises(client.ApiException) as forbidden:
            client.CoreV1Api(operator).list_namespaced_config_map(namespace)
        assert forbidden.value.status == 403


def test_every_crd_in_the_repository_is_established(control_plane: Cluster) -> None:
    declared = {
        document["metadata"]["name"]
        for path in sorted(CRD_DIR.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") == "CustomResourceDefinition"
    }
    for name in declared:
        crd = json.loads(control_plane.kubectl("get", "crd", name, "-o", "json", check=True).stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"].get("conditions", [])}
        assert conditions.get("Established") == "True", (name, conditions)
