"""The status write queue (coalescing, priority, per-monitor order, the write budget,
failures) and the two reporters on top of it.

The queue is driven with a scripted sender instead of an API server: each write is recorded
when it starts and when it ends, a monitor's writes can be held in flight, and a write can be
made to fail as the API server would. The reporters are given a recording stand-in for the two
client methods they call.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import kubernetes_validate
import pytest
from kubernetes.client.exceptions import ApiException

from tcpmonitor.api import (
    MonitorState,
    ProbeResult,
    Problem,
    TcpMonitorStatus,
    Timings,
    Verdict,
)
from tcpmonitor.kube.api_client import KubeApi
from tcpmonitor.kube.status_writer import (
    MAX_KEPT_PER_MONITOR,
    RETRY_FIRST,
    TRANSITION_SPACING,
    KubeReporter,
    LocationReporter,
    WriteQueue,
)
from tcpmonitor.reporting import EventSpec
from tcpmonitor.reporting.kept_result import keep
from tcpmonitor.reporting.record import MonitorRecord
from tcpmonitor.scheduling.runtime import MonitorRef, StatusReport
from tcpmonitor.telemetry.metrics import Metrics

T = TypeVar("T")


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Poll a condition on the fakes' state, which has no event to wait on."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


async def settle() -> None:
    """Let every runnable worker take its next step (no timers involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


def ref(name: str) -> MonitorRef:
    return MonitorRef("ns", name, uid=name)


class ScriptedSender:
    """The queue's sender: records writes as (monitor, body number), holds or fails them."""

    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.finished: list[tuple[str, int]] = []
        self.finish_times: list[float] = []
        self.held: dict[str, asyncio.Event] = {}
        self.failures: dict[str, list[int]] = {}  # monitor -> HTTP statuses of its next writes
        self.active: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()

    def hold(self, name: str) -> asyncio.Event:
        self.held[name] = asyncio.Event()
        return self.held[name]

    def sent(self, name: str) -> list[int]:
        return [n for who, n in self.started if who == name]

    async def __call__(self, ref: MonitorRef, body: dict[str, Any]) -> None:
        write = (ref.name, body["n"])
        self.started.append(write)
        self.active[ref.name] += 1
        self.most_at_once[ref.name] = max(self.most_at_once[ref.name], self.active[ref.name])
        try:
            gate = self.held.get(ref.name)
            if gate is not None:
                await gate.wait()
            failures = self.failures.get(ref.name)
            if failures:
                raise ApiException(status=failures.pop(0), reason="scripted")
        finally:
            self.active[ref.name] -= 1
            self.finished.append(write)
            self.finish_times.append(asyncio.get_running_loop().time())


def patches(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "tcpmonitor_status_patches_total", {"result": outcome}
    )
    return value or 0.0


Scenario = Callable[[WriteQueue, ScriptedSender, Metrics], Awaitable[None]]


def with_queue(scenario: Scenario, *, workers: int = 4, rate: float | None = None) -> None:
    async def main() -> None:
        sender = ScriptedSender()
        metrics = Metrics()
        queue = WriteQueue(sender, metrics, workers=workers, rate=rate)
        try:
            await scenario(queue, sender, metrics)
        finally:
            await queue.close()

    run(main)


# Coalescing


def test_writes_submitted_before_a_worker_runs_are_sent_once_with_the_newest_body() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        for n in range(1, 6):
            queue.submit(ref("m"), {"n": n}, urgent=False)
        assert queue.backlog() == 1
        await until(lambda: queue.backlog() == 0 and sender.finished == [("m", 5)])
        await settle()
        assert sender.started == [("m", 5)]
        assert patches(metrics, "success") == 1

    with_queue(scenario)


def test_a_newer_write_replaces_a_queued_one() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        gate = sender.hold("m")
        queue.submit(ref("m"), {"n": 1}, urgent=False)
        await until(lambda: sender.started == [("m", 1)])
        for n in (2, 3, 4):  # while 1 is in flight: only the newest may follow it
            queue.submit(ref("m"), {"n": n}, urgent=n == 3)
            await settle()
        assert queue.backlog() == 1
        gate.set()
        await until(lambda: len(sender.finished) == 2)
        await settle()
        assert sender.sent("m") == [1, 4]
        assert patches(metrics, "success") == 2

    with_queue(scenario)


def test_forgetting_a_monitor_drops_its_queued_write() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        gate = sender.hold("busy")
        queue.submit(ref("busy"), {"n": 1}, urgent=False)
        await until(lambda: sender.started == [("busy", 1)])
        queue.submit(ref("gone"), {"n": 1}, urgent=True)
        queue.forget(("ns", "gone"))
        assert queue.backlog() == 0
        gate.set()
        queue.submit(ref("after"), {"n": 1}, urgent=False)
        await until(lambda: ("after", 1) in sender.finished)
        await settle()
        assert sender.sent("gone") == []

    with_queue(scenario, workers=1)


# Priority


def test_urgent_writes_go_before_heartbeats_in_submission_order() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        gate = sender.hold("busy")  # occupies the only worker while the others queue up
        queue.submit(ref("busy"), {"n": 0}, urgent=False)
        await until(lambda: sender.started == [("busy", 0)])
        queue.submit(ref("beat-a"), {"n": 1}, urgent=False)
        queue.submit(ref("beat-b"), {"n": 1}, urgent=False)
        queue.submit(ref("change-x"), {"n": 1}, urgent=True)
        queue.submit(ref("beat-c"), {"n": 1}, urgent=False)
        queue.submit(ref("change-y"), {"n": 1}, urgent=True)
        gate.set()
        await until(lambda: len(sender.finished) == 6)
        assert [name for name, _ in sender.started] == [
            "busy",
            "change-x",
            "change-y",
            "beat-a",
            "beat-b",
            "beat-c",
        ]

    with_queue(scenario, workers=1)


def test_a_queued_heartbeat_that_becomes_urgent_moves_to_the_front_once() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        gate = sender.hold("busy")
        queue.submit(ref("busy"), {"n": 0}, urgent=False)
        await until(lambda: sender.started == [("busy", 0)])
        queue.submit(ref("a"), {"n": 1}, urgent=False)
        queue.submit(ref("b"), {"n": 1}, urgent=False)
        queue.submit(ref("b"), {"n": 2}, urgent=True)  # b's state changed meanwhile
        gate.set()
        await until(lambda: len(sender.finished) == 3)
        await settle()
        assert sender.started == [("busy", 0), ("b", 2), ("a", 1)]

    with_queue(scenario, workers=1)


# Per-monitor order


def test_a_slow_write_holds_back_only_its_own_monitor() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        gate = sender.hold("slow")
        queue.submit(ref("slow"), {"n": 1}, urgent=False)
        await until(lambda: sender.started == [("slow", 1)])
        queue.submit(ref("slow"), {"n": 2}, urgent=True)
        for name in ("a", "b", "c"):
            queue.submit(ref(name), {"n": 1}, urgent=False)
        await until(lambda: len(sender.finished) == 3)
        await settle()
        # The others went by; the urgent second write waited for the first to finish.
        assert sender.sent("slow") == [1]
        gate.set()
        await until(lambda: sender.finished[-1] == ("slow", 2))
        assert sender.sent("slow") == [1, 2]
        assert sender.finished.index(("slow", 1)) < sender.finished.index(("slow", 2))
        assert sender.most_at_once["slow"] == 1

    with_queue(scenario, workers=4)


def test_a_failed_write_does_not_block_the_next_one_of_its_monitor() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        gate = sender.hold("m")
        sender.failures["m"] = [500]
        queue.submit(ref("m"), {"n": 1}, urgent=False)
        await until(lambda: sender.started == [("m", 1)])
        queue.submit(ref("m"), {"n": 2}, urgent=False)
        gate.set()
        await until(lambda: sender.finished == [("m", 1), ("m", 2)])
        assert sender.most_at_once["m"] == 1
        assert (patches(metrics, "error"), patches(metrics, "success")) == (1, 1)

    with_queue(scenario)


def test_one_monitors_writes_never_overlap_while_waiting_for_the_budget() -> None:
    """Two workers can hold queue entries for one monitor (a heartbeat, then the same write
    made urgent); whichever gets a budget token second must not start a write beside the
    first, or an older status could land after a newer one."""

    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        for i in range(20):  # spend the initial burst, so every write waits for a token
            queue.submit(ref(f"warm-{i}"), {"n": 0}, urgent=False)
        await until(lambda: len(sender.finished) == 20)
        gate = sender.hold("m")
        queue.submit(ref("m"), {"n": 1}, urgent=False)
        queue.submit(ref("m"), {"n": 2}, urgent=True)
        await until(lambda: sender.sent("m") == [2])
        queue.submit(ref("m"), {"n": 3}, urgent=False)  # while 2 is in flight
        await asyncio.sleep(0.15)  # longer than the wait for the next tokens at 20/s
        assert sender.sent("m") == [2]
        gate.set()
        await until(lambda: sender.sent("m") == [2, 3] and queue.backlog() == 0)
        await until(lambda: sender.active["m"] == 0)
        assert sender.most_at_once["m"] == 1
        assert sender.finished[-1] == ("m", 3)

    with_queue(scenario, workers=2, rate=20.0)


# Failures


def test_a_write_to_a_deleted_monitor_is_dropped_without_counting_an_error() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        sender.failures["m"] = [404]
        queue.submit(ref("m"), {"n": 1}, urgent=True)
        await until(lambda: sender.finished == [("m", 1)])
        await settle()
        assert queue.backlog() == 0
        assert (patches(metrics, "error"), patches(metrics, "success")) == (0, 0)

    with_queue(scenario)


def test_a_failed_write_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        sender.failures["m"] = [503]
        queue.submit(ref("m"), {"n": 1}, urgent=True)
        await until(lambda: patches(metrics, "error") == 1)

    with caplog.at_level("WARNING", logger="tcpmonitor.kube.status_writer"):
        with_queue(scenario)
    assert "status write of ns/m failed: 503 scripted (will retry)" in caplog.text


def test_a_failed_status_write_is_retried_with_back_off() -> None:
    """A failed body stays queued and is sent again after the back-off; the newest body of the
    monitor wins if one came meanwhile."""

    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        loop = asyncio.get_running_loop()
        sender.failures["m"] = [500, 500]
        queue.submit(ref("m"), {"n": 1}, urgent=True)
        await until(lambda: patches(metrics, "error") == 1)
        failed_at = loop.time()
        assert queue.backlog() == 1  # kept, not dropped
        await until(lambda: patches(metrics, "error") == 2)
        assert loop.time() - failed_at >= RETRY_FIRST * 0.9  # backed off before retrying
        queue.submit(ref("m"), {"n": 2}, urgent=False)  # newer while backing off
        await until(lambda: patches(metrics, "success") == 1, within=5)
        assert sender.sent("m") == [1, 1, 2]  # the third try sends the newest body
        assert queue.backlog() == 0
        retries = metrics.registry.get_sample_value("tcpmonitor_status_write_retries_total")
        assert retries == 2

    with_queue(scenario)


def test_a_deleted_monitor_stops_its_retries() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        sender.failures["m"] = [500]
        queue.submit(ref("m"), {"n": 1}, urgent=True)
        await until(lambda: patches(metrics, "error") == 1)
        queue.forget(("ns", "m"))
        await asyncio.sleep(RETRY_FIRST * 2)
        assert sender.sent("m") == [1] and queue.backlog() == 0

    with_queue(scenario)


# Transitions while writes fail, and fencing


def test_a_state_change_queued_behind_a_failing_write_is_kept_in_order() -> None:
    """Up -> Down -> Up while the API server is away reaches it as Down, then Up (newest of
    each state), a second apart so that watchers that batch events see both."""

    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        sender.failures["m"] = [503]
        queue.submit(ref("m"), {"n": 1}, urgent=True, state="Up")
        await until(lambda: patches(metrics, "error") == 1)
        queue.submit(ref("m"), {"n": 2}, urgent=True, state="Down")
        queue.submit(ref("m"), {"n": 3}, urgent=False, state="Down")  # coalesces with 2
        queue.submit(ref("m"), {"n": 4}, urgent=True, state="Up")
        assert queue.backlog() == 3  # failed Up, Down, Up
        await until(lambda: patches(metrics, "success") == 3, within=5)
        assert sender.sent("m") == [1, 1, 3, 4]
        done = {n: t for (_, n), t in zip(sender.finished, sender.finish_times, strict=True)}
        assert done[3] - done[1] >= TRANSITION_SPACING * 0.9
        assert done[4] - done[3] >= TRANSITION_SPACING * 0.9
        assert queue.backlog() == 0

    with_queue(scenario)


def test_a_body_of_the_same_state_replaces_a_failed_one() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        sender.failures["m"] = [503]
        queue.submit(ref("m"), {"n": 1}, urgent=True, state="Down")
        await until(lambda: patches(metrics, "error") == 1)
        queue.submit(ref("m"), {"n": 2}, urgent=False, state="Down")
        await until(lambda: patches(metrics, "success") == 1, within=5)
        assert sender.sent("m") == [1, 2]

    with_queue(scenario)


def test_kept_transitions_are_bounded_per_monitor_and_counted_when_coalesced() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        queue.pause()
        states = ["Up", "Down"] * 5
        for n, state in enumerate(states):
            queue.submit(ref("m"), {"n": n}, urgent=True, state=state)
        assert queue.backlog() == MAX_KEPT_PER_MONITOR
        coalesced = metrics.registry.get_sample_value(
            "tcpmonitor_status_transitions_coalesced_total"
        )
        assert coalesced == len(states) - MAX_KEPT_PER_MONITOR
        queue.resume()
        await until(lambda: len(sender.finished) == MAX_KEPT_PER_MONITOR, within=10)
        # The newest ones, in order: the last state is always the one written last.
        assert sender.sent("m") == list(range(len(states)))[-MAX_KEPT_PER_MONITOR:]

    with_queue(scenario)


def test_a_paused_queue_writes_nothing_and_loses_nothing() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        queue.pause()
        for name in ("a", "b"):
            queue.submit(ref(name), {"n": 1}, urgent=True, state="Up")
            queue.submit(ref(name), {"n": 2}, urgent=False, state="Up")
        await asyncio.sleep(0.1)
        assert sender.started == [] and queue.paused and queue.backlog() == 2
        queue.resume()
        await until(lambda: len(sender.finished) == 2)
        assert sorted(sender.started) == [("a", 2), ("b", 2)]

    with_queue(scenario)


def test_a_successful_write_records_when() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        queue.submit(ref("m"), {"n": 1}, urgent=True)
        await until(lambda: patches(metrics, "success") == 1)
        stamp = metrics.registry.get_sample_value(
            "tcpmonitor_status_last_success_timestamp_seconds"
        )
        assert stamp is not None and abs(stamp - time.time()) < 5

    with_queue(scenario)


def test_failed_writes_are_counted_by_reason() -> None:
    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        sender.failures["m"] = [429, 503]
        queue.submit(ref("m"), {"n": 1}, urgent=True)
        await until(lambda: patches(metrics, "success") == 1, within=5)
        for reason in ("throttled", "server_error"):
            value = metrics.registry.get_sample_value(
                "tcpmonitor_api_errors_total", {"operation": "status", "reason": reason}
            )
            assert value == 1, reason

    with_queue(scenario)


# The write budget


def test_the_write_budget_bounds_the_writes_per_second() -> None:
    """A token bucket: a burst of ``rate`` writes, then ``rate`` a second. Counted against the
    loop clock at each write's start, so a slow machine only makes the bound easier."""
    rate, total = 50.0, 75

    async def scenario() -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def send(ref: MonitorRef, body: dict[str, Any]) -> None:
            starts.append(loop.time())

        began = loop.time()
        queue = WriteQueue(send, Metrics(), workers=4, rate=rate)
        try:
            for i in range(total):
                queue.submit(ref(f"m{i}"), {"n": i}, urgent=False)
            await until(lambda: len(starts) == total, within=10.0)
        finally:
            await queue.close()
        return began, starts

    began, starts = run(scenario)
    for count, at in enumerate(starts, start=1):
        allowed = rate + rate * (at - began)
        assert count <= allowed + 1, f"write {count} at {at - began:.3f}s exceeds the budget"
    # The bucket really refills: the writes past the burst took about (75 - 50) / 50 s.
    assert starts[-1] - began >= (total - rate - 1) / rate


def test_a_budget_below_one_write_per_second_still_writes() -> None:
    """``--write-budget 0.5`` is accepted; the bucket must still hold one whole token."""

    async def scenario(queue: WriteQueue, sender: ScriptedSender, metrics: Metrics) -> None:
        queue.submit(ref("m"), {"n": 1}, urgent=True)
        await until(lambda: sender.finished == [("m", 1)], within=1.0)
        queue.submit(ref("next"), {"n": 1}, urgent=True)
        await asyncio.sleep(0.1)  # the next token is two seconds away
        assert sender.sent("next") == []

    with_queue(scenario, rate=0.5)


# The reporters


class RecordingApi:
    """The two client methods the reporters call, recorded; ``call`` as KubeApi runs it."""

    def __init__(self) -> None:
        self.custom = self
        self.events = self
        self.patches: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.event_error: Exception | None = None

    def patch_namespaced_custom_object_status(self, *args: Any, **options: Any) -> None:
        self.patches.append((args, options))

    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
        if self.event_error is not None:
            raise self.event_error
        self.posted.append((namespace, body))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        await asyncio.sleep(0)
        return fn(*args, **kwargs)


DOWN = TcpMonitorStatus(
    state=MonitorState.DOWN,
    message="connect timed out",
    consecutive_failures=2,
    last_probe_time=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
)


CONNECT_TIMEOUT = ProbeResult(
    state=Verdict.DOWN,
    started_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
    remote_address="10.0.0.1:443",
    timings=Timings(connect=3.0, total=3.5),
    error=Problem(code="CONNECT_TIMEOUT", message="10.0.0.1:443: connect timed out"),
)


def test_the_operator_merge_patches_only_the_top_level_status() -> None:
    async def scenario() -> RecordingApi:
        api = RecordingApi()
        reporter = KubeReporter(cast(KubeApi, api), Metrics(), instance="op-0")
        reporter.write_status(ref("m"), DOWN, urgent=True)
        await until(lambda: len(api.patches) == 1)
        await reporter.close()
        return api

    api = run(scenario)
    (args, options) = api.patches[0]
    assert args[:5] == ("tcpmonitor.dev", "v1alpha1", "ns", "tcpmonitors", "m")
    assert options == {}  # the client's default for this call: a merge patch
    body = args[5]
    assert list(body) == ["status"]
    assert body["status"]["state"] == "Down"
    assert body["status"]["lastProbeTime"] == "2026-11-21T12:00:00Z"
    assert "locations" not in body["status"]  # the runners' entries are not ours to replace


def test_the_operator_posts_a_valid_event_about_the_exact_object() -> None:
    async def scenario() -> RecordingApi:
        api = RecordingApi()
        reporter = KubeReporter(cast(KubeApi, api), Metrics(), instance="op-" + "x" * 200)
        reporter.post_event(ref("m"), EventSpec("Warning", "TargetDown", "down: " + "y" * 2000))
        await until(lambda: len(api.posted) == 1)
        await reporter.close()
        return api

    namespace, body = run(scenario).posted[0]
    kubernetes_validate.validate(body, "1.37", strict=True)
    assert namespace == "ns" == body["metadata"]["namespace"]
    assert body["metadata"]["name"].startswith("m.")
    assert (body["type"], body["reason"], body["action"]) == ("Warning", "TargetDown", "Probe")
    assert body["regarding"] == {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "name": "m",
        "namespace": "ns",
        "uid": "m",
    }
    assert (len(body["note"]), len(body["reportingInstance"])) == (1024, 128)
    assert body["eventTime"].endswith("Z")


def test_a_failed_event_is_logged_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        api = RecordingApi()
        api.event_error = ApiException(status=422, reason="Unprocessable Entity")
        reporter = KubeReporter(cast(KubeApi, api), Metrics(), instance="op-0")
        reporter.post_event(ref("m"), EventSpec("Normal", "TargetUp", "up"))
        await until(lambda: "TargetUp" in caplog.text)
        await reporter.close()

    with caplog.at_level("WARNING", logger="tcpmonitor.kube.status_writer"):
        run(scenario)
    assert "posting TargetUp event for ns/m failed: 422 Unprocessable Entity" in caplog.text


def test_a_runner_applies_only_its_locations_entry_under_its_own_field_manager() -> None:
    async def scenario() -> RecordingApi:
        api = RecordingApi()
        reporter = LocationReporter(cast(KubeApi, api), Metrics(), "eu-west", "runner-1")
        record = MonitorRecord(
            state=MonitorState.DOWN,
            consecutive_failures=2,
            kept_result=keep(CONNECT_TIMEOUT),
            last_probe_time=CONNECT_TIMEOUT.started_at,
        )
        reporter.write_status(ref("m"), StatusReport(record, None, DOWN), urgent=False)
        reporter.post_event(ref("m"), EventSpec("Warning", "TargetDown", "down"))
        await until(lambda: len(api.patches) == 1)
        await settle()
        await reporter.close()
        return api

    api = run(scenario)
    assert api.posted == []  # Events are the controller's to post
    (args, options) = api.patches[0]
    assert args[:5] == ("tcpmonitor.dev", "v1alpha1", "ns", "tcpmonitors", "m")
    assert options == {
        "field_manager": "tcpmonitor-runner-eu-west",
        "force": True,
        "_content_type": "application/apply-patch+yaml",
    }
    body = args[5]
    assert body["metadata"] == {"name": "m", "namespace": "ns"}
    assert (body["apiVersion"], body["kind"]) == ("tcpmonitor.dev/v1alpha1", "TcpMonitor")
    assert list(body["status"]) == ["locations"]
    [entry] = body["status"]["locations"]
    assert (entry["name"], entry["state"], entry["runner"]) == ("eu-west", "Down", "runner-1")
    assert entry["consecutiveFailures"] == 2
    # Built from the record, the full result included; the top-level status is not read.
    assert (entry["errorCode"], entry["totalMs"]) == ("CONNECT_TIMEOUT", 3.5)
    assert entry["message"].startswith("CONNECT_TIMEOUT 10.0.0.1:443")
    assert entry["lastResult"]["location"] == "eu-west"
    assert entry["lastResult"]["remoteAddress"] == "10.0.0.1:443"


def events_counted(metrics: Metrics, name: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(f"{name}_total", {"reason": reason})
    return value or 0.0


def test_only_events_the_api_server_accepted_count_as_posted() -> None:
    metrics = Metrics()

    async def scenario() -> None:
        api = RecordingApi()
        reporter = KubeReporter(cast(KubeApi, api), metrics, instance="op-0")
        reporter.post_event(ref("m"), EventSpec("Warning", "TargetDown", "down"))
        await until(lambda: len(api.posted) == 1)
        api.event_error = ApiException(status=404, reason="Not Found")
        reporter.post_event(ref("m"), EventSpec("Normal", "TargetUp", "up"))
        await settle()
        await reporter.close()

    run(scenario)
    assert events_counted(metrics, "tcpmonitor_events_posted", "TargetDown") == 1
    assert events_counted(metrics, "tcpmonitor_events_posted", "TargetUp") == 0


def test_an_event_the_api_server_could_not_take_is_posted_once_it_can() -> None:
    """An outage (503, connection refused) delays an Event, it does not lose it; a refusal that
    a retry cannot change (the namespace is gone: 404) is given up at once and counted; a 403
    is retried (an API server that just restarted answers 403 until its RBAC caches fill)."""
    metrics = Metrics()

    async def scenario() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        api = RecordingApi()
        reporter = KubeReporter(cast(KubeApi, api), metrics, instance="op-0")
        api.event_error = ApiException(status=503, reason="Service Unavailable")
        began = loop.time()
        reporter.post_event(ref("m"), EventSpec("Warning", "TargetDown", "down"))
        await asyncio.sleep(RETRY_FIRST * 2)  # two tries have failed by now
        assert api.posted == []
        api.event_error = None  # the API server is back
        await until(lambda: len(api.posted) == 1, within=5)
        took = loop.time() - began
        api.event_error = ApiException(status=403, reason="Forbidden")
        reporter.post_event(ref("m"), EventSpec("Warning", "TargetDegraded", "slow"))
        await asyncio.sleep(RETRY_FIRST * 2)
        api.event_error = None  # RBAC caches filled
        await until(lambda: len(api.posted) == 2, within=5)
        api.event_error = ApiException(status=404, reason="Not Found")
        reporter.post_event(ref("m"), EventSpec("Normal", "TargetUp", "up"))
        await settle()
        await reporter.close()
        return [body["reason"] for _, body in api.posted], took

    reasons, took = run(scenario)
    assert reasons == ["TargetDown", "TargetDegraded"] and took >= RETRY_FIRST
    assert events_counted(metrics, "tcpmonitor_events_posted", "TargetDown") == 1
    assert events_counted(metrics, "tcpmonitor_events_dropped", "TargetDown") == 0
    assert events_counted(metrics, "tcpmonitor_events_dropped", "TargetUp") == 1


def test_a_runner_counts_the_events_it_leaves_to_the_controller_not_as_posted() -> None:
    metrics = Metrics()

    async def scenario() -> None:
        reporter = LocationReporter(cast(KubeApi, RecordingApi()), metrics, "eu", "runner-1")
        reporter.post_event(ref("m"), EventSpec("Warning", "TargetDown", "down"))
        await reporter.close()

    run(scenario)
    assert events_counted(metrics, "tcpmonitor_events_posted", "TargetDown") == 0
    assert events_counted(metrics, "tcpmonitor_events_left_to_controller", "TargetDown") == 1
