"""Operator processes that start and stop: state survives a restart, SIGTERM is honoured.

Separate from test_operator.py so that no cluster-wide operator runs beside these ones.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane import Cluster

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    condition,
    eventually,
    reasons,
    state_is,
    status,
    tcpmonitor,
)


@pytest.fixture
def target() -> Iterator[Listener]:
    listener = Listener().start()
    yield listener
    listener.stop()


def test_restart_keeps_counters_and_transition_times(
    control_plane: Cluster, namespace: str, target: Listener, tmp_path: Path
) -> None:
    first = OperatorProcess(control_plane, tmp_path, "--heartbeat", "1s", "--namespace", namespace)
    try:
        apply(
            control_plane,
            tcpmonitor(namespace, "r", port=target.port, interval="1s", timeout="500ms"),
        )
        eventually(
            lambda: (status(control_plane, namespace, "r").get("consecutiveSuccesses") or 0) >= 3,
            15,
            message="three successes",
        )
    finally:
        first.stop()
    before = status(control_plane, namespace, "r")
    second = OperatorProcess(control_plane, tmp_path, "--heartbeat", "1s", "--namespace", namespace)
    try:
        after = eventually(
            lambda: (
                (st := status(control_plane, namespace, "r"))
                and st["consecutiveSuccesses"] > before["consecutiveSuccesses"]
                and st
            ),
            10,
            message="counting on after restart",
        )
    finally:
        second.stop()
    assert after["lastTransitionTime"] == before["lastTransitionTime"]
    assert (
        condition(after, "Reachable")["lastTransitionTime"]
        == condition(before, "Reachable")["lastTransitionTime"]
    )
    assert reasons(control_plane, namespace, "r") == ["TargetUp"]  # no event from the restart


def test_sigterm_stops_the_operator_within_ten_seconds(
    control_plane: Cluster, namespace: str, target: Listener, tmp_path: Path
) -> None:
    process = OperatorProcess(control_plane, tmp_path, "--namespace", namespace)
    apply(control_plane, tcpmonitor(namespace, "s", port=target.port))
    eventually(lambda: state_is(control_plane, namespace, "s", "Up"), 10, message="Up")
    took = process.stop(signal.SIGTERM)
    assert process.process.returncode == 0, process.log()
    assert took < 10
