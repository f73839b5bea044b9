"""rbac.namespaced: the processes reconcile the watched namespace only; `helm upgrade`."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.controlplane import Cluster

from ..operator_process import apply, eventually, get, status, tcpmonitor
from .chart_release import (
    CHART,
    Targets,
    can_i,
    controller,
    forbidden,
    identity,
    install,
    run_helm,
    runner,
    up,
)


def test_namespaced_rbac_reconciles_only_the_watched_namespace(
    control_plane: Cluster,
    helm: Path,
    helm_home: Path,
    targets: Targets,
    tmp_path: Path,
) -> None:
    """rbac.namespaced: Roles in the watched namespace, no cluster-wide permission at all."""
    cluster = control_plane
    home = f"tcpm-ns-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", home, check=True)
    name = "scoped"
    try:
        scoped = install(
            cluster,
            helm,
            helm_home,
            home,
            name,
            "--set",
            f"watchNamespaces={{{targets.namespace}}}",
            "--set",
            "rbac.namespaced=true",
            # No TcpMonitorPolicy can be read without cluster-wide permissions: the targets
            # on loopback are allowed by the installation's own allow-list.
            "--set",
            "targetPolicy.allowedCIDRs={127.0.0.0/8}",
        )
        assert {m["kind"] for m in scoped.manifest} >= {"Role", "RoleBinding"}
        assert not {m["kind"] for m in scoped.manifest} & {"ClusterRole", "ClusterRoleBinding"}
        controller_kubeconfig = identity(
            cluster, home, scoped.service_account("controller"), tmp_path
        )
        runner_kubeconfig = identity(
            cluster, home, scoped.service_account("runner", "default"), tmp_path
        )
        for kubeconfig in (controller_kubeconfig, runner_kubeconfig):
            assert can_i(cluster, kubeconfig, "list", "tcpmonitors", "-n", targets.namespace)
            assert not can_i(cluster, kubeconfig, "list", "tcpmonitors", "--all-namespaces")
            assert not can_i(cluster, kubeconfig, "get", "secrets", "-n", home)
            assert can_i(cluster, kubeconfig, "list", "leases", "-n", home)
            assert not can_i(cluster, kubeconfig, "list", "leases", "-n", targets.namespace)
        for component in ("controller", "runner"):
            assert f"--namespace={targets.namespace}" in scoped.args(component)
        active = controller(cluster, scoped, tmp_path, controller_kubeconfig)
        prober = runner(cluster, scoped, tmp_path, runner_kubeconfig)
        try:
            apply(cluster, tcpmonitor(home, "elsewhere", port=targets.listener.port))
            targets.apply(cluster)
            eventually(lambda: up(cluster, targets.namespace, "web"), 20, message="Up")
            eventually(lambda: up(cluster, targets.namespace, "kubernetes-api"), 20, message="Up")
            assert not status(cluster, home, "elsewhere")  # not watched, not touched
        finally:
            prober.stop()
            active.stop()
        for process in (active, prober):
            assert not forbidden(process.records()), process.log()
        # `helm upgrade` as docs/install.md has it.
        upgraded = run_helm(
            helm,
            cluster,
            helm_home,
            "upgrade",
            name,
            str(CHART),
            "--namespace",
            home,
            "--reuse-values",
            "--set",
            "logLevel=debug",
        )
        assert "STATUS: deployed" in upgraded and "REVISION: 2" in upgraded
        for deployment in (
            f"{name}-tcpmonitor-operator-controller",
            f"{name}-tcpmonitor-operator-runner-default",
        ):
            live = get(cluster, home, deployment, "deployment")
            (container,) = live["spec"]["template"]["spec"]["containers"]
            assert "--log-level=debug" in container["args"]
    finally:
        run_helm(helm, cluster, helm_home, "uninstall", name, "--namespace", home, check=False)
        cluster.kubectl("delete", "namespace", home, "--wait=false")
