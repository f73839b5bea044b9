"""The default mode: the controller and a runner, with the chart's identities, end to end; a
second controller standing by."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.controlplane import Cluster
from tests.unit.gitops.test_argocd_health import argocd_health

from ..operator_process import OperatorProcess, condition, eventually, get, reasons, status
from .chart_release import (
    CONTROLLER_LEASE,
    Manifest,
    Release,
    Targets,
    controller,
    forbidden,
    identity,
    lease,
    location,
    runner,
    settled,
)


def field_managers(cluster: Cluster, namespace: str, name: str) -> dict[str, Manifest]:
    """Who wrote what in a TcpMonitor's status (server-side apply bookkeeping)."""
    out = cluster.kubectl(
        "get", "tcpmonitor", name, "-n", namespace, "-o", "json", "--show-managed-fields"
    )
    entries = json.loads(out.stdout)["metadata"]["managedFields"]
    return {
        e["manager"]: e.get("fieldsV1", {}) for e in entries if e.get("subresource") == "status"
    }


def test_controller_and_runner_with_the_chart_identities_reconcile_end_to_end(
    control_plane: Cluster,
    release: Release,
    targets: Targets,
    tmp_path: Path,
) -> None:
    ns, cluster = targets.namespace, control_plane
    controller_kubeconfig = identity(
        cluster, release.namespace, release.service_account("controller"), tmp_path
    )
    runner_kubeconfig = identity(
        cluster, release.namespace, release.service_account("runner", "default"), tmp_path
    )
    # Exactly the Deployments' arguments: all namespaces, Leases in the release namespace.
    assert not any(a.startswith("--namespace") for a in release.args("controller"))
    assert f"--lease-namespace={release.namespace}" in release.args("controller")
    assert f"--lease-namespace={release.namespace}" in release.args("runner", "default")
    active = controller(cluster, release, tmp_path, controller_kubeconfig)
    prober = runner(cluster, release, tmp_path, runner_kubeconfig)
    try:
        targets.apply(cluster, targets.nowhere())
        # Settled: the controller has seen the runner's Lease (it reads them every third of
        # the Lease duration) and its report.
        web = eventually(lambda: settled(cluster, ns, "web"), 20, message="web Up")
        api = eventually(lambda: settled(cluster, ns, "kubernetes-api"), 20, message="api Up")
        for st in (web, api):
            # The runner's entry, and the controller's verdict over it.
            assert location(st)["state"] == "Up"
            assert location(st)["runner"] == "runner-default-0"
            assert condition(st, "Ready")["status"] == "True"
            assert condition(st, "Reachable")["status"] == "True"
            assert condition(st, "LocationsAvailable")["status"] == "True"
        # Server-side apply: the runner owns only its location's entry; the controller the rest.
        managers = field_managers(cluster, ns, "web")
        runner_fields = managers.pop("tcpmonitor-runner-default")["f:status"]
        assert list(runner_fields) == ["f:locations"]
        assert list(runner_fields["f:locations"]) == ['k:{"name":"default"}']
        assert any("f:state" in fields.get("f:status", {}) for fields in managers.values())
        # A location without a runner is reported, not silently ignored.
        nowhere = eventually(
            lambda: (
                (st := status(cluster, ns, "nowhere"))
                and condition(st, "LocationsAvailable").get("status") == "False"
                and st
            ),
            20,
            message="nowhere: LocationsAvailable=False",
        )
        assert condition(nowhere, "LocationsAvailable")["reason"] == "NoLiveRunner"
        eventually(
            lambda: {"TargetUp"} <= set(reasons(cluster, ns, "web")),
            10,
            message="TargetUp event",
        )
        eventually(
            lambda: "LocationUnavailable" in reasons(cluster, ns, "nowhere"),
            10,
            message="LocationUnavailable event",
        )
        # Events come from the controller (the runner, which may not create any, would log a
        # 403 if it tried: checked below).
        items = json.loads(
            cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json").stdout
        )["items"]
        assert {e["reportingController"] for e in items} == {"tcpmonitor.dev/operator"}
        # Runners export the probe results; the controller the aggregated state.
        assert prober.metric("tcpmonitor_probe_success", namespace=ns, name="web") == 1
        assert active.metric("tcpmonitor_probe_success", namespace=ns, name="web") is None
        assert active.metric("tcpmonitor_state", namespace=ns, name="web", state="Up") == 1
        # Both Leases, in the release namespace.
        held = lease(cluster, release.namespace, CONTROLLER_LEASE)
        assert held["spec"]["holderIdentity"] == "controller-0"
        mine = lease(cluster, release.namespace, "tcpmonitor-runner-runner-default-0")
        assert mine["metadata"]["labels"] == {
            "tcpmonitor.dev/role": "runner",
            "tcpmonitor.dev/location": "default",
        }
        # What users see, pasted into docs/install.md.
        table = cluster.kubectl("get", "tcpm", "-n", ns, check=True).stdout
        print(f"\n$ kubectl get tcpm -n {ns}\n{table}")
        assert table.split()[:7] == ["NAME", "HOST", "PORT", "STATE", "LATENCY", "LAST", "PROBE"]
        # The per-location view the install notes suggest.
        (command,) = [
            line.strip()
            for line in release.install_output.splitlines()
            if "-o custom-columns=" in line
        ]
        words = shlex.split(command)
        assert words[:4] == ["kubectl", "get", "tcpmonitors", "--all-namespaces"]
        columns = cluster.kubectl(*words[1:], check=True).stdout
        print(f"\n$ {command}\n{columns}")
        rows = {
            tuple(line.split(maxsplit=4)[:2]): line.split(maxsplit=4)
            for line in columns.splitlines()
        }
        row = rows[(ns, "web")]
        # One location: the message is the deciding result, as the all-in-one writes it.
        assert row[2:4] == ["Up", "default"], row
        assert row[4].startswith(web["lastResult"]["remoteAddress"] + " Up (dns ")
        # The Argo CD health check of docs/gitops.md on the live objects.
        live = get(cluster, ns, "web")
        assert argocd_health(live)["status"] == "Healthy"
        # No finalizers: uninstalling the operator can never block deleting a monitor.
        assert "finalizers" not in live["metadata"]
    finally:
        prober.stop()
        active.stop()
    for process in (active, prober):
        assert not forbidden(process.records()), process.log()
    # Both Leases were given up on the way out, so that others take over at once.
    assert not lease(cluster, release.namespace, CONTROLLER_LEASE)
    assert not lease(cluster, release.namespace, "tcpmonitor-runner-runner-default-0")


def test_a_second_controller_stands_by(
    control_plane: Cluster, release: Release, tmp_path: Path
) -> None:
    """controller.replicas=2: the standby is healthy (the chart's readiness probe) but idle."""
    kubeconfig = identity(
        control_plane, release.namespace, release.service_account("controller"), tmp_path
    )
    active = controller(control_plane, release, tmp_path, kubeconfig)
    standby = OperatorProcess(
        control_plane,
        tmp_path,
        *release.args("controller"),
        "--identity=controller-1",
        kubeconfig=kubeconfig,
        wait_ready=False,
    )
    try:
        readiness = container_probe(release, "controller", "readinessProbe")
        eventually(lambda: standby.http_status(readiness) == 200, 10, message="standby healthy")
        assert standby.http_status("/readyz") == 503
        held = lease(control_plane, release.namespace, CONTROLLER_LEASE)
        assert held["spec"]["holderIdentity"] == "controller-0"
        # The active one gives the Lease up when it stops; the standby takes it at once.
        active.stop()
        eventually(standby.ready, 10, message="the standby takes over")
    finally:
        standby.stop()
        active.stop()
    assert not forbidden(standby.records()), standby.log()


def container_probe(release: Release, component: str, probe: str) -> str:
    (container,) = release.workload(component)["spec"]["template"]["spec"]["containers"]
    path: str = container[probe]["httpGet"]["path"]
    return path
