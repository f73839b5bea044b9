"""The runtime with real probes on loopback, an in-memory reporter and resolver."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import generate_latest

from tcpmonitor.api import (
    MonitorState,
    ProbeResult,
    TcpMonitor,
    TcpMonitorSpec,
    TcpMonitorStatus,
)
from tcpmonitor.probe import ProbeMaterial, ProbePlan, run_probe
from tcpmonitor.probe.material import ReferenceMap, resolve_material
from tcpmonitor.reporting import EventSpec, status_body
from tcpmonitor.scheduling.runtime import MonitorRef, MonitorRuntime, RuntimeSettings, StatusReport
from tcpmonitor.telemetry.metrics import Metrics

from ..probe import protocol_servers
from ..servers import closed_port, greet, serve, silent


class MemoryReporter:
    def __init__(self) -> None:
        self.writes: list[tuple[str, TcpMonitorStatus, bool]] = []
        self.events: list[tuple[str, EventSpec]] = []
        self.forgotten: list[str] = []

    def write_status(
        self, ref: MonitorRef, report: StatusReport | TcpMonitorStatus, *, urgent: bool
    ) -> None:
        status = report.status if isinstance(report, StatusReport) else report
        self.writes.append((ref.name, status, urgent))

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        self.events.append((ref.name, event))

    def forget(self, ref: MonitorRef) -> None:
        self.forgotten.append(ref.name)

    def last(self, name: str) -> TcpMonitorStatus:
        return [s for n, s, _ in self.writes if n == name][-1]

    async def probed(self, name: str, within: float = 5.0) -> TcpMonitorStatus:
        """The first status of ``name`` that carries a probe (a fixed sleep is not enough for
        the first probe on a machine busy with other work)."""
        async with asyncio.timeout(within):
            while True:
                done = [s for n, s, _ in self.writes if n == name and s.last_probe_time]
                if done:
                    return done[0]
                await asyncio.sleep(0.01)

    def reasons(self, name: str) -> list[str]:
        return [e.reason for n, e in self.events if n == name]


class DictResolver(ReferenceMap):
    """References from dicts the test fills in, resolved like the operator resolves them."""

    async def resolve(self, spec: TcpMonitorSpec, namespace: str) -> ProbeMaterial:
        return resolve_material(spec, namespace, self)


def monitor(
    name: str,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    namespace: str = "ns",
    **spec: Any,
) -> TcpMonitor:
    spec.setdefault("host", "127.0.0.1")
    spec.setdefault("interval", "1s")
    spec.setdefault("timeout", "500ms")
    body: dict[str, Any] = {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": generation,
            "uid": f"uid-{name}",
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return TcpMonitor.model_validate(body)


def below_schema_minimum(m: TcpMonitor, interval: str) -> TcpMonitor:
    """``m`` with an interval the schema refuses, as an object stored before the CRD had the
    bound; timing tests run it on a runtime whose minimum is lowered (``min_interval``) so
    that they see many probes in a fraction of a second."""
    spec = m.spec.model_copy(update={"interval": interval, "timeout": interval})
    return m.model_copy(update={"spec": spec})


def runtime(
    reporter: MemoryReporter, resolver: DictResolver | None = None, **settings: Any
) -> MonitorRuntime:
    return MonitorRuntime(
        reporter, resolver or DictResolver(), Metrics(), RuntimeSettings(**settings)
    )


def test_a_new_monitor_is_probed_at_once_and_reported() -> None:
    reporter = MemoryReporter()

    async def scenario() -> None:
        async with serve(silent) as port:
            rt = runtime(reporter)
            await rt.apply(monitor("web", port=port))
            await asyncio.sleep(0.05)
            await rt.close()

    asyncio.run(scenario())
    first, after_probe = reporter.writes[0][1], reporter.last("web")
    assert first.state is MonitorState.UNKNOWN and first.observed_generation == 1
    assert after_probe.state is MonitorState.UP
    assert reporter.reasons("web") == ["TargetUp"]


def test_steady_state_writes_only_on_heartbeat() -> None:
    reporter = MemoryReporter()

    async def scenario() -> int:
        async with serve(silent) as port:
            rt = runtime(reporter, heartbeat=0.5, min_interval=0.05)
            await rt.apply(below_schema_minimum(monitor("web", port=port), "50ms"))
            await asyncio.sleep(1.2)
            probes = int(rt.scheduler.stats.probes_started)
            await rt.close()
            return probes

    probes = asyncio.run(scenario())
    assert probes >= 15
    # creation + first result + two or three heartbeats, not one write per probe
    assert 3 <= len(reporter.writes) <= 5, len(reporter.writes)


def test_a_target_going_down_and_up_is_reported_on_transitions_only() -> None:
    reporter = MemoryReporter()

    async def scenario() -> None:
        rt = runtime(reporter, heartbeat=60, min_interval=0.1)
        async with serve(silent) as port:
            await rt.apply(
                below_schema_minimum(monitor("db", port=port, failureThreshold=2), "100ms")
            )
            await asyncio.sleep(0.15)
        # the listener is gone now: refused on every probe
        await asyncio.sleep(0.5)
        await rt.close()

    asyncio.run(scenario())
    assert reporter.reasons("db") == ["TargetUp", "TargetDown"]
    down = reporter.last("db")
    assert down.state is MonitorState.DOWN and down.consecutive_failures >= 2
    assert down.last_result is not None and down.last_result.error is not None
    assert down.last_result.error.code == "CONNECTION_REFUSED"


def test_missing_secret_is_ready_false_once_then_recovers_when_it_appears() -> None:
    reporter = MemoryReporter()
    resolver = DictResolver()

    async def scenario() -> None:
        async with serve(greet(b"hello")) as port:
            rt = runtime(reporter, resolver, problem_retry=0.1)
            await rt.apply(
                monitor(
                    "secret-payload",
                    port=port,
                    sendFrom={"secretKeyRef": {"name": "payload", "key": "data"}},
                    assertions=[
                        {"source": "ResponseData", "comparison": "Contains", "target": "hello"}
                    ],
                )
            )
            await rt.apply(monitor("healthy", port=port))
            await asyncio.sleep(0.35)
            assert rt.state_of(("ns", "healthy")) is MonitorState.UP
            assert rt.state_of(("ns", "secret-payload")) is MonitorState.UNKNOWN
            resolver.secrets[("ns", "payload")] = {"data": b"hi"}
            await asyncio.sleep(0.3)
            await rt.close()

    asyncio.run(scenario())
    broken = next(s for n, s, _ in reporter.writes if n == "secret-payload")
    ready = next(c for c in broken.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "ReferenceNotFound")
    assert 'Secret "payload" key "data": not found or not readable' in ready.message
    assert reporter.reasons("secret-payload") == ["InvalidSpec", "TargetUp"]
    final = reporter.last("secret-payload")
    assert final.state is MonitorState.UP
    assert next(c for c in final.conditions if c.type == "Ready").status == "True"


def test_a_regex_too_large_to_compile_is_invalid_spec() -> None:
    # The schema (like the API server) takes it; only compiling the probe refuses it.
    reporter = MemoryReporter()

    async def scenario() -> None:
        rt = runtime(reporter, problem_retry=0.05)
        await rt.apply(
            monitor(
                "bad-regex",
                port=closed_port(),
                assertions=[
                    {"source": "ResponseData", "comparison": "Matches", "target": r"\pL{1000}"}
                ],
            )
        )
        await asyncio.sleep(0.3)
        await rt.close()

    asyncio.run(scenario())
    assert reporter.reasons("bad-regex") == ["InvalidSpec"]  # retried, but reported once
    assert len(reporter.writes) == 1


def test_pausing_stops_probing_and_shows_paused() -> None:
    reporter = MemoryReporter()

    async def scenario() -> int:
        async with serve(silent) as port:
            rt = runtime(reporter)
            await rt.apply(monitor("p", port=port))
            await asyncio.sleep(0.05)
            await rt.apply(monitor("p", generation=2, port=port, paused=True))
            before = rt.scheduler.stats.probes_started
            await asyncio.sleep(0.4)
            after = rt.scheduler.stats.probes_started
            await rt.close()
            return after - before

    assert asyncio.run(scenario()) == 0
    last = reporter.last("p")
    assert last.state is MonitorState.PAUSED and last.observed_generation == 2


def test_removing_a_monitor_removes_its_metric_series() -> None:
    reporter = MemoryReporter()

    async def scenario() -> tuple[str, str]:
        async with serve(silent) as port:
            rt = runtime(reporter)
            await rt.apply(monitor("gone", port=port))
            await rt.apply(monitor("kept", port=port))
            await asyncio.sleep(0.05)
            before = generate_latest(rt.metrics.registry).decode()
            rt.remove(("ns", "gone"))
            after = generate_latest(rt.metrics.registry).decode()
            await rt.close()
            return before, after

    before, after = asyncio.run(scenario())
    assert 'name="gone"' in before
    assert 'name="gone"' not in after and 'name="kept"' in after
    assert reporter.forgotten == ["gone"]


def test_restart_resumes_counters_without_writing_or_probing_at_once() -> None:
    first = MemoryReporter()

    async def before_restart() -> TcpMonitorStatus:
        async with serve(silent) as port:
            rt = runtime(first)
            await rt.apply(monitor("r", port=port, interval="10s", timeout="1s"))
            await first.probed("r")
            await rt.close()
            return first.last("r")

    status = asyncio.run(before_restart())
    second = MemoryReporter()

    async def after_restart() -> int:
        rt = runtime(second)
        await rt.apply(
            monitor("r", port=1, interval="10s", timeout="1s", status=status_body(status))
        )
        await asyncio.sleep(0.05)
        started = rt.scheduler.stats.probes_started
        await rt.close()
        return started

    assert asyncio.run(after_restart()) == 0
    assert second.writes == [] and second.events == []


def test_own_status_updates_do_not_reschedule() -> None:
    reporter = MemoryReporter()

    async def scenario() -> int:
        async with serve(silent) as port:
            rt = runtime(reporter)
            m = monitor("s", port=port, interval="10s", timeout="1s")
            await rt.apply(m)
            await reporter.probed("s")
            body = m.model_dump(by_alias=True, mode="json")
            body["status"] = status_body(reporter.last("s"))
            await rt.apply(TcpMonitor.model_validate(body))
            await asyncio.sleep(0.05)
            started = rt.scheduler.stats.probes_started
            await rt.close()
            return started

    assert asyncio.run(scenario()) == 1


def test_a_monitor_below_the_minimum_interval_is_not_probed_and_says_why() -> None:
    reporter = MemoryReporter()

    async def scenario() -> tuple[int, MonitorState | None]:
        async with serve(silent) as port:
            rt = runtime(reporter, problem_retry=0.05, min_interval=5.0)
            # Stored before the CRD had the bound: the schema would refuse 0s today.
            await rt.apply(below_schema_minimum(monitor("zero", port=port), "0s"))
            await rt.apply(monitor("short", port=port, interval="2s"))  # valid, below 5s
            await rt.apply(monitor("fine", port=port, interval="10s", timeout="1s"))
            await asyncio.sleep(0.3)
            started = rt.scheduler.stats.probes_started
            state = rt.state_of(("ns", "fine"))
            await rt.close()
            return started, state

    started, fine = asyncio.run(scenario())
    assert started == 1 and fine is MonitorState.UP
    for name, shown in (("zero", "0s"), ("short", "2s")):
        ready = next(c for c in reporter.last(name).conditions if c.type == "Ready")
        assert (ready.status, ready.reason) == ("False", "IntervalTooShort")
        assert f"spec.interval: {shown} is below the minimum of 5s" in ready.message
        assert reporter.reasons(name) == ["InvalidSpec"]  # retried, but one Warning Event
        assert "IntervalTooShort" in next(e for n, e in reporter.events if n == name).message


def test_an_exception_from_the_probe_is_reported_on_that_monitor_and_the_others_go_on() -> None:
    reporter = MemoryReporter()
    broken = {"on": True}

    async def probe(plan: ProbePlan) -> ProbeResult:
        if plan.port == bad_port and broken["on"]:
            raise KeyError("a bug in one monitor's probe")
        return await run_probe(plan)

    async def scenario() -> tuple[MonitorState | None, int]:
        nonlocal bad_port
        async with serve(silent) as good_port, serve(silent) as bad:
            bad_port = bad
            rt = MonitorRuntime(
                reporter,
                DictResolver(),
                Metrics(),
                RuntimeSettings(min_interval=0.1),
                probe=probe,
            )
            await rt.apply(below_schema_minimum(monitor("bad", port=bad), "100ms"))
            await rt.apply(below_schema_minimum(monitor("good", port=good_port), "100ms"))
            await asyncio.sleep(0.5)
            good = rt.state_of(("ns", "good"))
            failing = reporter.last("bad")
            ready = next(c for c in failing.conditions if c.type == "Ready")
            assert (ready.status, ready.reason) == ("False", "ProbeError")
            assert "KeyError" in ready.message
            broken["on"] = False  # fixed: the next probe clears it
            await asyncio.sleep(0.3)
            probes = int(rt.scheduler.stats.probes_started)
            await rt.close()
            return good, probes

    bad_port = 0
    good, probes = asyncio.run(scenario())
    assert good is MonitorState.UP
    assert probes >= 10
    assert reporter.reasons("bad") == ["ProbeError", "TargetUp"]  # once, not every interval
    assert "KeyError" in next(e for n, e in reporter.events if n == "bad").message
    recovered = reporter.last("bad")
    assert next(c for c in recovered.conditions if c.type == "Ready").status == "True"
    assert recovered.state is MonitorState.UP


def test_probes_dropped_for_want_of_a_slot_show_in_the_status_not_a_stale_up() -> None:
    reporter = MemoryReporter()

    async def scenario() -> tuple[str, TcpMonitorStatus, int]:
        release, first_done = asyncio.Event(), asyncio.Event()

        async def probe(plan: ProbePlan) -> ProbeResult:
            if plan.port == 2:  # the hog: never returns while the test runs
                await release.wait()
            result = await run_probe(plan)
            first_done.set()
            return result

        async with serve(silent) as port:
            rt = MonitorRuntime(
                reporter,
                DictResolver(),
                Metrics(),
                RuntimeSettings(min_interval=0.1, max_concurrency=1),
                probe=probe,
            )
            await rt.apply(below_schema_minimum(monitor("victim", port=port), "100ms"))
            await first_done.wait()  # Up first: then the hog takes the only slot
            await asyncio.sleep(0.05)
            await rt.apply(monitor("hog", namespace="other", port=2, interval="10s"))
            await asyncio.sleep(0.6)
            exposition = generate_latest(rt.metrics.registry).decode()
            status = reporter.last("victim")
            skipped = rt.scheduler.stats.probes_starved
            release.set()
            await rt.close()
            return exposition, status, skipped

    exposition, status, skipped = asyncio.run(scenario())
    assert skipped >= 2
    assert status.skipped_probes >= 1
    reachable = next(c for c in status.conditions if c.type == "Reachable")
    assert (reachable.status, reachable.reason) == ("Unknown", "ProbesSkipped")
    assert status.message is not None and "skipped" in status.message
    assert reporter.reasons("victim") == ["TargetUp", "ProbesSkipped"]  # once per episode
    assert 'tcpmonitor_probes_skipped_total{reason="concurrency"}' in exposition
    assert 'tcpmonitor_monitor_probes_skipped_total{name="victim"' in exposition


def test_liveness_fails_when_the_scheduler_timer_stops() -> None:
    async def scenario() -> tuple[bool, bool, str]:
        rt = runtime(MemoryReporter(), stall_limit=0.2)
        await rt.apply(monitor("m", port=closed_port(), interval="1s"))
        healthy = rt.health()[0]
        timer = rt.scheduler._timer
        assert timer is not None
        timer.cancel()  # what a dead timer callback used to leave behind
        await asyncio.sleep(1.8)
        ok, detail = rt.health()
        await rt.close()
        return healthy, ok, detail

    healthy, ok, detail = asyncio.run(scenario())
    assert healthy and not ok
    assert "behind its earliest slot" in detail


def test_a_probe_that_outlasts_its_interval_is_counted_as_overlap_skips() -> None:
    """The probe is slower than its interval (e.g. a probe function without the budget):
    the slots it covers are counted under reason overlap, not silently lost."""

    async def slow(plan: ProbePlan) -> ProbeResult:
        await asyncio.sleep(0.35)
        return await run_probe(plan)

    async def scenario() -> float:
        async with serve(silent) as port:
            metrics = Metrics()
            rt = MonitorRuntime(
                MemoryReporter(),
                DictResolver(),
                metrics,
                RuntimeSettings(min_interval=0.05),
                probe=slow,
            )
            await rt.apply(below_schema_minimum(monitor("slow", port=port), "100ms"))
            await asyncio.sleep(0.6)
            await rt.close()
            value = metrics.registry.get_sample_value(
                "tcpmonitor_probes_skipped_total", {"reason": "overlap"}
            )
            return value or 0.0

    assert asyncio.run(scenario()) >= 2


def test_retries_that_would_overrun_the_interval_are_dropped_and_counted() -> None:
    async def scenario() -> tuple[float, float]:
        async with serve(silent) as port:
            metrics = Metrics()
            rt = MonitorRuntime(
                MemoryReporter(), DictResolver(), metrics, RuntimeSettings(min_interval=0.05)
            )
            hello = [{"source": "ResponseData", "comparison": "Contains", "target": "hello"}]
            slow = monitor("slow", port=port, retries=2, assertions=hello)
            spec = slow.spec.model_copy(update={"interval": "300ms", "timeout": "200ms"})
            await rt.apply(slow.model_copy(update={"spec": spec}))
            await asyncio.sleep(1.2)
            await rt.close()
            dropped = metrics.registry.get_sample_value("tcpmonitor_probe_retries_dropped_total")
            overlap = metrics.registry.get_sample_value(
                "tcpmonitor_probes_skipped_total", {"reason": "overlap"}
            )
            return dropped or 0.0, overlap or 0.0

    dropped, overlap = asyncio.run(scenario())
    assert dropped >= 4  # both re-tries of every probe
    # No slot found a probe's re-tries still running; the one overlap allowed is the first,
    # immediate probe, whose own attempt may outlast the sooner slot that follows it.
    assert overlap <= 1


def test_a_protocol_monitor_reports_what_the_server_said_in_status_and_events() -> None:
    """The runtime (operator, runners, tcpmonitor run) carries result.protocol into the
    status's lastResult and the state message, and a protocol failure into the Event."""
    reporter = MemoryReporter()

    async def scenario() -> None:
        async with (
            serve(protocol_servers.redis(password=True)) as redis_port,
            serve(greet(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as web_port,
        ):
            rt = runtime(reporter)
            await rt.apply(monitor("cache", port=redis_port, protocol="Redis"))
            await rt.apply(monitor("not-redis", port=web_port, protocol="Redis"))
            await asyncio.sleep(0.2)
            await rt.close()

    asyncio.run(scenario())
    cache = reporter.last("cache")
    assert cache.state is MonitorState.UP
    assert cache.last_result is not None and cache.last_result.protocol is not None
    assert cache.last_result.protocol.detail == "NOAUTH Authentication required."
    body = status_body(cache)
    assert body["lastResult"]["protocol"] == {
        "name": "Redis",
        "detail": "NOAUTH Authentication required.",
    }
    broken = reporter.last("not-redis")
    assert broken.state is MonitorState.DOWN
    assert broken.last_result is not None and broken.last_result.error is not None
    assert broken.last_result.error.code == "PROTOCOL_ERROR"
    [(_, event)] = [(n, e) for n, e in reporter.events if n == "not-redis"]
    assert event.reason == "TargetDown"
    assert "PROTOCOL_ERROR" in event.message and "HTTP/1.1 400" in event.message
