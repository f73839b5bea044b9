"""The releases the package's tests share, and the targets each test probes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane import Cluster

from ..operator_process import Listener
from .chart_release import RELEASE, REMOTE, Release, Targets, install, run_helm


@pytest.fixture(scope="package")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="package")
def release(control_plane: Cluster, helm: Path, helm_home: Path) -> Iterator[Release]:
    """The chart with default values (plus the dashboard and a remote location), in a namespace
    of its own."""
    namespace = f"tcpm-system-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace, check=True)
    installed = install(
        control_plane,
        helm,
        helm_home,
        namespace,
        RELEASE,
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        f"remoteLocations[0].name={REMOTE}",
    )
    yield installed
    run_helm(helm, control_plane, helm_home, "uninstall", RELEASE, "--namespace", namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="package")
def all_in_one(control_plane: Cluster, helm: Path, helm_home: Path) -> Iterator[Release]:
    """The chart with mode=all-in-one, in a namespace of its own."""
    namespace = f"tcpm-aio-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace, check=True)
    installed = install(
        control_plane, helm, helm_home, namespace, "aio", "--set", "mode=all-in-one"
    )
    yield installed
    run_helm(helm, control_plane, helm_home, "uninstall", "aio", "--namespace", namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def targets(namespace: str) -> Iterator[Targets]:
    listener = Listener(greeting=b"hi there\n").start()
    yield Targets(namespace, listener)
    listener.stop()
