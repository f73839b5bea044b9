"""A remote location: runners elsewhere reporting with the token the home release made."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.controlplane import Cluster

from ..operator_process import OperatorProcess, condition, eventually, tcpmonitor
from .chart_release import (
    RELEASE,
    REMOTE,
    Release,
    Targets,
    can_i,
    controller,
    forbidden,
    identity,
    install,
    location,
    run_helm,
    runnerless,
    settled,
)


def test_a_remote_location_reports_with_its_own_token(
    control_plane: Cluster,
    release: Release,
    helm: Path,
    helm_home: Path,
    targets: Targets,
    tmp_path: Path,
) -> None:
    """remoteLocations: runners elsewhere (here: a mode=runners release in another namespace,
    standing in for another cluster) report to this API server with the token of the
    ServiceAccount the home release made for them."""
    cluster, ns = control_plane, targets.namespace
    account = f"{RELEASE}-remote-{REMOTE}"
    assert account in release.all("ServiceAccount")
    kubeconfig = identity(cluster, release.namespace, account, tmp_path)
    # Exactly the runners' permissions: no Events, nothing of the controller's Lease role.
    assert can_i(cluster, kubeconfig, "patch", "tcpmonitors", "--subresource=status", "-n", ns)
    assert not can_i(cluster, kubeconfig, "create", "events.events.k8s.io", "-n", ns)
    assert not can_i(cluster, kubeconfig, "update", "leases", "-n", ns)
    # The other side: the kubeconfig in a Secret, and the chart in mode=runners.
    away = f"tcpm-away-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", away, check=True)
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "tcpmonitor-home",
        "-n",
        away,
        f"--from-file=kubeconfig={kubeconfig}",
        check=True,
    )
    try:
        remote = install(
            cluster,
            helm,
            helm_home,
            away,
            "away",
            "--skip-crds",
            "--set",
            "mode=runners",
            "--set",
            f"locations[0].name={REMOTE}",
            "--set",
            "locations[0].replicas=1",
            "--set",
            "remote.kubeconfigSecret.name=tcpmonitor-home",
            "--set",
            f"remote.leaseNamespace={release.namespace}",
        )
        assert {m["kind"] for m in remote.manifest} == {"ServiceAccount", "Service", "Deployment"}
        args = remote.args("runner", REMOTE)
        assert "--kubeconfig=/etc/tcpmonitor/kubeconfig" in args
        assert f"--lease-namespace={release.namespace}" in args
        # The Secret's file is mounted there in the pod; here it is the local file.
        args = [a for a in args if not a.startswith("--kubeconfig")]
        home = identity(cluster, release.namespace, release.service_account("controller"), tmp_path)
        active = controller(cluster, release, tmp_path, home)
        prober = OperatorProcess(
            cluster,
            tmp_path,
            *args,
            "--identity=away-runner-0",
            kubeconfig=kubeconfig,
            command="runner",
        )
        try:
            targets.apply(
                cluster, tcpmonitor(ns, "far", port=targets.listener.port, locations=[REMOTE])
            )
            # Settled: Up, and the controller has seen the remote runner's Lease.
            far = eventually(lambda: settled(cluster, ns, "far"), 20, message="far Up")
            assert location(far, REMOTE)["runner"] == "away-runner-0"
            assert condition(far, "LocationsAvailable")["status"] == "True"
            # No runner of location default is running: the home monitors wait for one, said
            # once the controller has watched the Leases for a lease duration (15 s).
            eventually(lambda: runnerless(cluster, ns, "web"), 25, message="web: no runner")
        finally:
            prober.stop()
            active.stop()
        assert not forbidden(prober.records()), prober.log()
    finally:
        run_helm(helm, cluster, helm_home, "uninstall", "away", "--namespace", away, check=False)
        cluster.kubectl("delete", "namespace", away, "--wait=false")
