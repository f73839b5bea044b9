"""Maintenance windows in the runtime: probing goes on, Maintenance shown, no Events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from tcpmonitor.api import MonitorState, TcpMonitor

from ..servers import closed_port
from .test_runtime import MemoryReporter, monitor, runtime


def test_a_window_shows_maintenance_without_events_and_its_end_is_probed_at_once() -> None:
    reporter = MemoryReporter()
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(minutes=1)).isoformat(), "end": ""}
    window["end"] = (now + timedelta(seconds=0.6)).isoformat()

    async def scenario() -> tuple[str, int]:
        rt = runtime(reporter)
        # A closed port and an interval of an hour: only the window's end can probe again.
        await rt.apply(
            monitor(
                "db",
                port=closed_port(),
                interval="1h",
                timeout="1s",
                maintenance={"windows": [window]},
            )
        )
        await asyncio.sleep(0.3)
        during = generate_latest(rt.metrics.registry).decode()
        await asyncio.sleep(0.6)
        probes = rt.scheduler.stats.probes_started
        await rt.close()
        return during, probes

    during, probes = asyncio.run(scenario())
    states = [s.state for n, s, _ in reporter.writes if n == "db"]
    assert MonitorState.MAINTENANCE in states and states[-1] is MonitorState.DOWN
    assert reporter.reasons("db") == ["TargetDown"]  # one, after the window
    assert probes == 2
    assert 'tcpmonitor_state{name="db",namespace="ns",state="Maintenance"} 1.0' in during
    assert 'tcpmonitor_state{name="db",namespace="ns",state="Down"} 0.0' in during


def test_the_maintenance_annotation_applies_at_once_to_many_monitors() -> None:
    reporter = MemoryReporter()
    until = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def scenario() -> None:
        rt = runtime(reporter)
        ms = [monitor(f"m{i}", port=closed_port(), interval="1h", timeout="1s") for i in range(3)]
        for m in ms:
            await rt.apply(m)
        await asyncio.sleep(0.2)
        for m in ms:  # as `kubectl annotate tcpmonitors -l ... maintenance-until=...` does
            body = m.model_dump(by_alias=True, mode="json", exclude_none=True)
            body["metadata"]["annotations"] = {"tcpmonitor.dev/maintenance-until": until}
            await rt.apply(TcpMonitor.model_validate(body))
        await asyncio.sleep(0.2)
        await rt.close()

    asyncio.run(scenario())
    for i in range(3):
        assert reporter.last(f"m{i}").state is MonitorState.MAINTENANCE
        assert reporter.reasons(f"m{i}") == ["TargetDown"]  # before the annotation only
