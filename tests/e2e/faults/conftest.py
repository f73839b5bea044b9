"""A control plane of the fault tests' own (they kill and throttle it) and both modes on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane import ControlPlane, GoNotFoundError, ensure_binaries
from tests.e2e.conftest import HOW_TO_GET_BINARIES, unavailable
from tests.e2e.faults.identities import service_account_kubeconfig
from tests.e2e.faults.proxy import ApiProxy
from tests.e2e.faults.scenario import Deployment

OPERATOR_ACCOUNT = ("tcpmonitor-faults", "operator")


@pytest.fixture(scope="session")
def fault_plane() -> Iterator[ControlPlane]:
    """Not the session's shared control plane: these tests kill it."""
    try:
        binaries = ensure_binaries()
    except GoNotFoundError as error:
        unavailable(f"{error}; {HOW_TO_GET_BINARIES}")
    plane = ControlPlane(binaries)
    plane.start()
    try:
        plane.install_crds()
        plane.cluster.allow_loopback_targets()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(autouse=True)
def _apiserver_up(fault_plane: ControlPlane) -> None:
    """Each test starts with the API server up, even if one before failed mid-outage."""
    if not fault_plane.apiserver_running:
        fault_plane.start_apiserver()


@pytest.fixture(scope="session")
def fault_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Logs of every process, kept (pytest keeps the last three runs) for post-mortems."""
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def operator_kubeconfig(fault_plane: ControlPlane, fault_dir: Path) -> Path:
    """A ServiceAccount of its own for every process: system:masters (the admin kubeconfig)
    is never throttled by API Priority and Fairness, and a real operator is not admin."""
    path = fault_dir / "operator.kubeconfig"
    service_account_kubeconfig(
        fault_plane.cluster, *OPERATOR_ACCOUNT, path, cluster_admin=True, duration="3h"
    )
    return path


@pytest.fixture(scope="module")
def proxy(fault_plane: ControlPlane) -> Iterator[ApiProxy]:
    """runner-1 reaches the API server through this proxy, so a test can cut it off alone."""
    with ApiProxy(fault_plane.cluster.server()) as p:
        yield p


@pytest.fixture(scope="module")
def deployment(
    fault_plane: ControlPlane, operator_kubeconfig: Path, fault_dir: Path, proxy: ApiProxy
) -> Iterator[Deployment]:
    """Both modes, settled: every monitor shows its target's truth, and the steady write rate
    is measured once for every fault of the module."""
    logs = fault_dir / "logs"
    logs.mkdir(exist_ok=True)
    runner_1 = proxy.kubeconfig(operator_kubeconfig, fault_dir / "runner-1.kubeconfig")
    d = Deployment(
        fault_plane.cluster, logs, operator_kubeconfig, runner_kubeconfigs={"runner-1": runner_1}
    )
    try:
        d.start()
        reached = d.wait_correct(60)
        assert max(reached.values()) < 60, (reached, d.states())
        d.steady_per_min = d.write_rate(40.0)
        yield d
    finally:
        d.close()
