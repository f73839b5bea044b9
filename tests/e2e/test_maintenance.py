"""A maintenance window end to end (all-in-one): Maintenance, no TargetDown, then Down and one."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.controlplane import Cluster

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    condition,
    eventually,
    reasons,
    state_is,
    tcpmonitor,
)

WINDOW = 12.0  # seconds from creation: long enough to see the monitor in it, short to wait for


def test_a_down_target_in_a_one_off_window_is_maintenance_and_down_with_one_event_after_it(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    closed = Listener().port  # bound, then released: nothing listens
    operator = OperatorProcess(control_plane, tmp_path, "--namespace", namespace)
    try:
        now = datetime.now(UTC)
        end = now + timedelta(seconds=WINDOW)
        window = {"start": (now - timedelta(minutes=1)).isoformat(), "end": end.isoformat()}
        apply(
            control_plane,
            tcpmonitor(
                namespace, "db", port=closed, interval="2s", maintenance={"windows": [window]}
            ),
        )
        st = eventually(
            lambda: state_is(control_plane, namespace, "db", "Maintenance"), 15, message="Maint."
        )
        assert condition(st, "Ready")["reason"] == "Maintenance"
        assert condition(st, "Reachable")["reason"] == "ConnectionRefused"  # probed meanwhile
        assert st["lastResult"]["error"]["code"] == "CONNECTION_REFUSED"
        labels = {"namespace": namespace, "name": "db"}
        assert operator.metric("tcpmonitor_state", **labels, state="Maintenance") == 1
        assert operator.metric("tcpmonitor_state", **labels, state="Down") == 0
        # Probes go on inside the window (the status is written on changes only: the metrics
        # count them), and post nothing.
        probes = operator.metric("tcpmonitor_probes_total", **labels, result="Down") or 0
        eventually(
            lambda: (
                (operator.metric("tcpmonitor_probes_total", **labels, result="Down") or 0) > probes
            ),
            10,
            message="probed again inside the window",
        )
        assert reasons(control_plane, namespace, "db") == []

        left = (end - datetime.now(UTC)).total_seconds()
        assert left > 0, "the window closed before the checks inside it were done"
        st = eventually(
            lambda: state_is(control_plane, namespace, "db", "Down"),
            left + 5,
            message="Down after the window",
        )
        assert condition(st, "Ready")["reason"] == "Probing"
        eventually(
            lambda: reasons(control_plane, namespace, "db") == ["TargetDown"],
            5,
            message="one TargetDown Event",
        )
        time.sleep(3)  # more probes after the window: still the one Event
        assert reasons(control_plane, namespace, "db") == ["TargetDown"]
        assert operator.metric("tcpmonitor_state", **labels, state="Maintenance") == 0
    finally:
        operator.stop()
