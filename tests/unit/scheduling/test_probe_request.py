"""Probe now: the requestedAt annotation probes at once, once, and is recorded in status."""

from __future__ import annotations

import asyncio
from typing import Any

from tcpmonitor.api import MonitorState, TcpMonitor
from tcpmonitor.api.probe_request import PROBE_REQUEST_ANNOTATION
from tcpmonitor.reporting import status_body

from ..servers import serve, silent
from .test_runtime import MemoryReporter, monitor, runtime


def annotated(m: TcpMonitor, value: str, status: dict[str, Any] | None = None) -> TcpMonitor:
    body = m.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["metadata"].setdefault("annotations", {})[PROBE_REQUEST_ANNOTATION] = value
    if status is not None:
        body["status"] = status
    return TcpMonitor.model_validate(body)


def handled(reporter: MemoryReporter, name: str) -> list[str | None]:
    return [s.last_handled_probe_request for n, s, _ in reporter.writes if n == name]


def test_a_new_request_probes_at_once_without_moving_the_schedule_and_is_recorded() -> None:
    reporter = MemoryReporter()

    async def scenario() -> tuple[int, int, float | None, float | None, int]:
        async with serve(silent) as port:
            rt = runtime(reporter)
            m = monitor("web", port=port, interval="1h", timeout="1s")
            await rt.apply(m)
            await asyncio.sleep(0.1)
            first = rt.scheduler.stats.probes_started
            slot_before = rt.scheduler.until_next_slot(("ns", "web"))
            status = status_body(reporter.last("web"))
            await rt.apply(annotated(m, "2026-12-01T20:00:00Z", status))
            await asyncio.sleep(0.1)
            second = rt.scheduler.stats.probes_started
            slot_after = rt.scheduler.until_next_slot(("ns", "web"))
            # The status write that follows comes back through the watch: nothing more.
            status = status_body(reporter.last("web"))
            await rt.apply(annotated(m, "2026-12-01T20:00:00Z", status))
            await asyncio.sleep(0.1)
            third = rt.scheduler.stats.probes_started
            await rt.close()
            return first, second - first, slot_before, slot_after, third - second

    first, added, slot_before, slot_after, again = asyncio.run(scenario())
    assert first == 1 and added == 1 and again == 0
    assert slot_before is not None and slot_after is not None
    assert abs((slot_before - slot_after) - 0.1) < 0.05  # the same slot, 0.1 s nearer
    last = reporter.last("web")
    assert last.state is MonitorState.UP
    assert last.last_handled_probe_request == "2026-12-01T20:00:00Z"
    assert handled(reporter, "web")[-1] == "2026-12-01T20:00:00Z"
    assert reporter.writes[-1][2] is True  # urgent: someone is waiting for it


def test_a_request_handled_before_a_restart_is_not_probed_again() -> None:
    reporter = MemoryReporter()

    async def scenario() -> int:
        async with serve(silent) as port:
            status = {
                "observedGeneration": 1,
                "state": "Up",
                "lastProbeTime": "2026-12-01T20:00:00Z",
                "lastHandledProbeRequest": "r1",
            }
            rt = runtime(reporter)
            m = monitor("web", port=port, interval="1h", timeout="1s")
            await rt.apply(annotated(m, "r1", status))
            await asyncio.sleep(0.1)
            started = rt.scheduler.stats.probes_started
            await rt.apply(annotated(m, "r2", status))  # a new one after the restart: probed
            await asyncio.sleep(0.1)
            started_after = rt.scheduler.stats.probes_started
            await rt.close()
            return started * 10 + started_after

    assert asyncio.run(scenario()) == 1  # none for r1, one for r2
    assert reporter.last("web").last_handled_probe_request == "r2"


def test_a_hostile_request_value_is_ignored() -> None:
    reporter = MemoryReporter()

    async def scenario() -> int:
        async with serve(silent) as port:
            rt = runtime(reporter)
            m = monitor("web", port=port, interval="1h", timeout="1s")
            await rt.apply(m)
            await asyncio.sleep(0.1)
            for value in ("x" * 65, "2026\n\x1b[31mforged", "x" * 100_000):
                await rt.apply(annotated(m, value))
            await asyncio.sleep(0.1)
            started = rt.scheduler.stats.probes_started
            await rt.close()
            return started

    assert asyncio.run(scenario()) == 1
    assert set(handled(reporter, "web")) == {None}


def test_a_request_to_a_paused_monitor_is_handled_without_a_probe() -> None:
    reporter = MemoryReporter()

    async def scenario() -> int:
        rt = runtime(reporter)
        m = monitor("p", port=1, interval="1h", timeout="1s", paused=True)
        await rt.apply(m)
        await rt.apply(annotated(m, "now"))
        await asyncio.sleep(0.05)
        started = rt.scheduler.stats.probes_started
        await rt.close()
        return started

    assert asyncio.run(scenario()) == 0
    last = reporter.last("p")
    assert last.state is MonitorState.PAUSED and last.last_handled_probe_request == "now"
