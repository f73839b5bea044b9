"""mode=all-in-one: one operator, with the chart's identity, end to end."""

from __future__ import annotations

from pathlib import Path

from tests.controlplane import Cluster
from tests.unit.gitops.test_argocd_health import argocd_health

from ..operator_process import OperatorProcess, condition, eventually, get, reasons
from .chart_release import Release, Targets, forbidden, identity, up


def test_all_in_one_with_the_chart_identity_reconciles_end_to_end(
    control_plane: Cluster,
    all_in_one: Release,
    targets: Targets,
    tmp_path: Path,
) -> None:
    cluster, ns = control_plane, targets.namespace
    rollout = f"rollout status deployment/{all_in_one.name}-tcpmonitor-operator\n"
    assert f"kubectl -n {all_in_one.namespace} {rollout}" in all_in_one.install_output
    assert sorted(m["kind"] for m in all_in_one.manifest) == [
        "ClusterRole",
        "ClusterRole",  # -edit and -view, for people (rbac.aggregatedRoles)
        "ClusterRole",
        "ClusterRole",  # -target-policy
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    kubeconfig = identity(
        cluster, all_in_one.namespace, all_in_one.service_account("operator"), tmp_path
    )
    assert not any(
        a.startswith(("--namespace", "--mode", "--lease")) for a in all_in_one.args("operator")
    )
    operator = OperatorProcess(
        cluster, tmp_path, *all_in_one.args("operator"), kubeconfig=kubeconfig
    )
    try:
        targets.apply(cluster)
        web = eventually(lambda: up(cluster, ns, "web"), 15, message="web Up")
        api = eventually(lambda: up(cluster, ns, "kubernetes-api"), 15, message="api Up")
        assert web["lastResult"]["response"]["excerpt"].startswith("hi there")
        assert api["lastResult"]["tls"]["verified"] is True
        for st in (web, api):
            assert condition(st, "Ready")["status"] == "True"
            assert condition(st, "Reachable")["status"] == "True"
        eventually(
            lambda: {"TargetUp"} <= set(reasons(cluster, ns, "web")),
            10,
            message="TargetUp event",
        )
        assert operator.metric("tcpmonitor_probe_success", namespace=ns, name="web") == 1
        assert argocd_health(get(cluster, ns, "web"))["status"] == "Healthy"
    finally:
        operator.stop()
    assert not forbidden(operator.records()), operator.log()
