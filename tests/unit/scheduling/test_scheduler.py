"""The scheduler with a fast fake probe: timing, spreading, overlap, cancellation."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Hashable

import pytest

from tcpmonitor.scheduling import FairGate, Scheduler, phase_of


class Recorder:
    def __init__(self, duration: float = 0.0) -> None:
        self.starts: dict[Hashable, list[float]] = defaultdict(list)
        self.duration = duration
        self.cancelled: list[Hashable] = []
        self.running = 0
        self.max_running = 0

    async def __call__(self, key: Hashable) -> None:
        self.starts[key].append(asyncio.get_running_loop().time())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.duration)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            self.running -= 1


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_immediate_probe_then_on_interval() -> None:
    async def scenario() -> list[float]:
        rec = Recorder()
        scheduler = Scheduler(rec)
        t0 = asyncio.get_running_loop().time()
        scheduler.schedule("a", 0.2, immediate=True)
        await asyncio.sleep(1.05)
        await scheduler.close()
        return [t - t0 for t in rec.starts["a"]]

    starts = run(scenario())
    assert starts[0] < 0.02  # at once
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]
    assert all(abs(g - 0.2) < 0.03 for g in gaps), gaps
    assert 5 <= len(starts) <= 7


def test_first_runs_are_spread_over_the_interval() -> None:
    async def scenario() -> list[float]:
        rec = Recorder()
        scheduler = Scheduler(rec, max_concurrency=10_000)
        t0 = asyncio.get_running_loop().time()
        for i in range(1000):
            scheduler.schedule(("ns", f"m{i}"), 1.0, immediate=False)
        await asyncio.sleep(1.05)
        await scheduler.close()
        return [starts[0] - t0 for starts in rec.starts.values()]

    firsts = run(scenario())
    assert len(firsts) == 1000
    per_tenth = [sum(1 for t in firsts if k / 10 <= t < (k + 1) / 10) for k in range(10)]
    # Evenly spread: every tenth of the interval gets roughly a tenth of the monitors.
    assert min(per_tenth) > 60 and max(per_tenth) < 140, per_tenth


def test_phase_is_stable_and_within_the_interval() -> None:
    assert phase_of(("ns", "a"), 10) == phase_of(("ns", "a"), 10)
    assert all(0 <= phase_of(("ns", str(i)), 10) < 10 for i in range(100))


def test_concurrency_is_bounded_globally() -> None:
    async def scenario() -> Recorder:
        rec = Recorder(duration=0.05)
        scheduler = Scheduler(rec, max_concurrency=5)
        for i in range(50):
            scheduler.schedule(i, 10, immediate=True)
        await asyncio.sleep(0.7)
        await scheduler.close()
        return rec

    rec = run(scenario())
    assert rec.max_running == 5
    assert sum(len(v) for v in rec.starts.values()) == 50


def test_a_slow_probe_never_overlaps_with_itself() -> None:
    async def scenario() -> tuple[Recorder, int]:
        rec = Recorder(duration=0.25)
        scheduler = Scheduler(rec)
        scheduler.schedule("slow", 0.1, immediate=True)
        await asyncio.sleep(0.8)
        skipped = scheduler.stats.slots_skipped
        await scheduler.close()
        return rec, skipped

    rec, skipped = run(scenario())
    assert rec.max_running == 1
    assert skipped >= 3


def test_unschedule_cancels_the_running_probe_and_stops_probing() -> None:
    async def scenario() -> Recorder:
        rec = Recorder(duration=1.0)
        scheduler = Scheduler(rec)
        scheduler.schedule("gone", 0.2, immediate=True)
        await asyncio.sleep(0.05)
        scheduler.unschedule("gone")
        await asyncio.sleep(0.5)
        await scheduler.close()
        return rec

    rec = run(scenario())
    assert rec.cancelled == ["gone"]
    assert len(rec.starts["gone"]) == 1


def test_rescheduling_immediately_restarts_a_running_probe() -> None:
    async def scenario() -> Recorder:
        rec = Recorder(duration=0.3)
        scheduler = Scheduler(rec)
        scheduler.schedule("m", 10, immediate=True)
        await asyncio.sleep(0.05)
        scheduler.schedule("m", 10, immediate=True)  # spec changed
        await asyncio.sleep(0.05)
        await scheduler.close()
        return rec

    rec = run(scenario())
    assert rec.cancelled[0] == "m"
    assert len(rec.starts["m"]) == 2


def test_lag_is_reported_and_small_when_idle() -> None:
    lags: list[float] = []

    async def scenario() -> None:
        scheduler = Scheduler(Recorder(), on_lag=lags.append)
        for i in range(100):
            scheduler.schedule(i, 0.2, immediate=False)
        await asyncio.sleep(0.45)
        await scheduler.close()

    run(scenario())
    assert len(lags) >= 150
    assert max(lags) < 0.05


def test_a_failing_probe_is_reported_and_does_not_stop_others() -> None:
    errors: list[Hashable] = []
    ok: list[Hashable] = []

    async def probe(key: Hashable) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        ok.append(key)

    async def scenario() -> None:
        scheduler = Scheduler(probe, on_error=lambda k, e: errors.append(k))
        scheduler.schedule("bad", 0.1, immediate=True)
        scheduler.schedule("good", 0.1, immediate=True)
        await asyncio.sleep(0.35)
        await scheduler.close()

    run(scenario())
    assert errors.count("bad") >= 3
    assert ok.count("good") >= 3


def test_closed_scheduler_refuses_new_work() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(Recorder())
        await scheduler.close()
        with pytest.raises(RuntimeError):
            scheduler.schedule("x", 1, immediate=True)

    run(scenario())


@pytest.mark.parametrize("interval", [0, 0.0, -1, float("nan"), float("inf"), 1e-12])
def test_an_interval_that_is_not_a_positive_number_is_refused(interval: float) -> None:
    async def scenario() -> None:
        scheduler = Scheduler(Recorder())
        with pytest.raises(ValueError, match="interval must be"):
            scheduler.schedule("zero", interval, immediate=True)
        assert "zero" not in scheduler
        await scheduler.close()

    run(scenario())


def test_a_key_that_breaks_the_timer_is_dropped_and_the_others_go_on() -> None:
    errors: list[tuple[Hashable, str]] = []

    async def scenario() -> tuple[Recorder, float, bool]:
        rec = Recorder()
        scheduler = Scheduler(rec, on_error=lambda k, e: errors.append((k, type(e).__name__)))
        scheduler.schedule("good", 0.1, immediate=True)
        scheduler.schedule("bad", 0.1, immediate=False)
        # What an interval of 0 did before schedule() checked it: next_slot divides by zero.
        scheduler._entries["bad"].interval = 0
        await asyncio.sleep(0.5)
        overdue, still_there = scheduler.overdue(), "bad" in scheduler
        await scheduler.close()
        return rec, overdue, still_there

    rec, overdue, still_there = run(scenario())
    assert errors == [("bad", "ZeroDivisionError")]
    assert not still_there and rec.starts["bad"] == []
    assert len(rec.starts["good"]) >= 4  # the timer kept firing for everybody else
    assert overdue < 0.05


def test_a_stopped_timer_shows_as_overdue() -> None:
    async def scenario() -> tuple[float, float]:
        scheduler = Scheduler(Recorder())
        scheduler.schedule("a", 0.1, immediate=False)
        on_time = scheduler.overdue()
        assert scheduler._timer is not None
        scheduler._timer.cancel()  # the callback died and was never re-armed
        await asyncio.sleep(0.4)
        stalled = scheduler.overdue()
        await scheduler.close()
        return on_time, stalled

    on_time, stalled = run(scenario())
    assert on_time == 0.0
    assert stalled > 0.2


def test_fair_gate_serves_groups_round_robin_not_first_come() -> None:
    async def scenario() -> list[str]:
        gate: FairGate[str] = FairGate(capacity=1, per_group=1)
        order: list[str] = []

        async def probe(group: str, name: str, due: float) -> None:
            await gate.acquire(group, due)
            order.append(name)
            await asyncio.sleep(0.01)
            gate.release(group)

        await gate.acquire("hostile", 0.0)  # the only slot is taken
        tasks = [asyncio.create_task(probe("hostile", f"h{i}", float(i))) for i in (3, 1, 2)] + [
            asyncio.create_task(probe("good", "g", 9.0))
        ]
        await asyncio.sleep(0.01)
        gate.release("hostile")
        await asyncio.gather(*tasks)
        return order

    # Earliest due first within a namespace; the good namespace's turn comes second, not last.
    assert run(scenario()) == ["h1", "g", "h2", "h3"]


def test_fair_gate_caps_a_group_and_keeps_slots_for_the_others() -> None:
    async def scenario() -> tuple[int, bool]:
        gate: FairGate[str] = FairGate(capacity=4, per_group=3)
        for _ in range(3):
            await gate.acquire("hostile", 0.0)
        waiting = asyncio.create_task(gate.acquire("hostile", 0.0))
        await asyncio.sleep(0.01)
        capped = gate.running("hostile")
        await asyncio.wait_for(gate.acquire("good", 1.0), 0.1)  # no wait: a slot is left
        granted = waiting.done()
        waiting.cancel()
        return capped, granted

    capped, granted = run(scenario())
    assert capped == 3 and not granted


def test_a_cancelled_waiter_gives_its_slot_to_the_next() -> None:
    async def scenario() -> bool:
        gate: FairGate[str] = FairGate(capacity=1, per_group=1)
        await gate.acquire("a", 0.0)
        gone = asyncio.create_task(gate.acquire("a", 1.0))
        later = asyncio.create_task(gate.acquire("b", 2.0))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        gate.release("a")
        await asyncio.wait_for(later, 0.1)
        return gate.in_use == 1 and gate.running("b") == 1

    assert run(scenario())


def test_one_namespace_cannot_hold_every_slot() -> None:
    async def scenario() -> tuple[Recorder, float]:
        rec = Recorder(duration=5.0)  # long timeouts against targets that never answer
        scheduler = Scheduler(rec, max_concurrency=8, group_of=lambda key: key[0])
        for i in range(50):
            scheduler.schedule(("hostile", f"m{i}"), 10, immediate=True)
        await asyncio.sleep(0.05)
        t0 = asyncio.get_running_loop().time()
        scheduler.schedule(("good", "bystander"), 10, immediate=True)
        await asyncio.sleep(0.05)
        started = rec.starts[("good", "bystander")]
        delay = started[0] - t0 if started else float("inf")
        await scheduler.close()
        return rec, delay

    rec, delay = run(scenario())
    hostile_started = sum(1 for key in rec.starts if key[0] == "hostile")
    assert hostile_started == 6  # three quarters of 8
    assert delay < 0.02


def test_a_probe_that_waited_a_whole_interval_for_a_slot_is_dropped_and_counted() -> None:
    skips: list[tuple[Hashable, str]] = []

    async def scenario() -> tuple[Recorder, int, int]:
        rec = Recorder(duration=1.0)
        scheduler = Scheduler(
            rec,
            max_concurrency=1,
            group_of=lambda key: key[0],
            on_skip=lambda k, reason: skips.append((k, reason)),
        )
        scheduler.schedule(("a", "hog"), 10, immediate=True)
        await asyncio.sleep(0.01)
        scheduler.schedule(("b", "starved"), 0.2, immediate=True)
        await asyncio.sleep(0.9)
        starved, overlap = scheduler.stats.probes_starved, scheduler.stats.slots_skipped
        await scheduler.close()
        return rec, starved, overlap

    rec, starved, overlap = run(scenario())
    assert rec.starts[("b", "starved")] == []
    assert starved >= 3 and overlap == 0
    assert set(skips) == {(("b", "starved"), "concurrency")}
    assert len(skips) == starved


def test_a_key_removed_and_added_again_is_probed_once_an_interval() -> None:
    """The removed entry's slot still in the heap must not fire the new one (a runner that
    hands a monitor over and takes it back probed it twice an interval, cancelling itself)."""

    async def scenario() -> tuple[list[float], list[str]]:
        rec = Recorder()
        skips: list[str] = []
        scheduler = Scheduler(rec, on_skip=lambda key, reason: skips.append(reason))
        scheduler.schedule("a", 0.2, immediate=True)
        await asyncio.sleep(0.05)
        scheduler.unschedule("a")
        scheduler.schedule("a", 0.2, immediate=False)
        t0 = asyncio.get_running_loop().time()
        await asyncio.sleep(1.0)
        await scheduler.close()
        return [t - t0 for t in rec.starts["a"]][1:], skips

    starts, skips = run(scenario())
    assert skips == []
    assert 4 <= len(starts) <= 6, starts


def test_probes_waiting_for_a_slot_hold_no_task() -> None:
    """Thousands of probes queued behind a namespace's cap are heap entries, not tasks: they
    cost no task switch when they are dropped an interval later."""

    async def scenario() -> tuple[int, int, int]:
        rec = Recorder(duration=5.0)
        scheduler = Scheduler(
            rec, max_concurrency=8, group_of=lambda key: key[0], cap_of_group=lambda g: 2
        )
        for i in range(3000):
            scheduler.schedule(("noisy", f"m{i}"), 0.2, immediate=True)
        # Every waiting probe is dropped and queued again once an interval (0.2 s) later; on a
        # busy machine that takes longer than the interval itself, so wait for it, bounded.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        # A counter has no event to wait on: poll it.
        while scheduler.stats.probes_starved < 2998 and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        tasks = len(asyncio.all_tasks())
        starved, running = scheduler.stats.probes_starved, rec.running
        await scheduler.close()
        return tasks, starved, running

    tasks, starved, running = run(scenario())
    assert running == 2
    assert tasks <= 4  # the two probes and this scenario, not three thousand
    assert starved >= 2998


def test_a_probe_cancelled_before_its_first_step_gives_its_slot_back() -> None:
    async def scenario() -> tuple[list[Hashable], int]:
        rec = Recorder(duration=5.0)
        scheduler = Scheduler(rec, max_concurrency=1)
        scheduler.schedule("a", 10, immediate=True)
        scheduler.schedule("b", 10, immediate=True)  # waits for a's slot
        await asyncio.sleep(0.01)
        scheduler.unschedule("a")  # a's slot goes to b once a's task has ended...
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert scheduler._entries["b"].task is not None  # granted: b's task exists
        scheduler.unschedule("b")  # ...and b is gone before its task took a step
        scheduler.schedule("c", 10, immediate=True)
        await asyncio.sleep(0.05)
        started = sorted(rec.starts)
        in_flight = scheduler.stats.in_flight
        await scheduler.close()
        return started, in_flight

    started, in_flight = run(scenario())
    assert "c" in started and in_flight == 1


def test_probe_now_waits_for_a_free_slot_and_runs_once() -> None:
    async def scenario() -> tuple[list[float], list[float], bool, int]:
        rec = Recorder(duration=0.2)
        scheduler = Scheduler(rec, max_concurrency=1, max_concurrency_per_group=1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        scheduler.schedule("busy", 100.0, immediate=True)
        scheduler.schedule("a", 100.0, immediate=False)
        await asyncio.sleep(0.01)
        asked = scheduler.probe_now("a")
        scheduler.probe_now("a")  # asked twice while waiting: still one probe
        await asyncio.sleep(0.5)
        unknown = scheduler.probe_now("nobody")
        await scheduler.close()
        starts = [t - t0 for t in rec.starts["a"]]
        return starts, [t - t0 for t in rec.starts["busy"]], asked and not unknown, len(starts)

    starts, busy, asked, count = run(scenario())
    assert asked and count == 1
    # The only slot was busy: the request waited for it instead of overrunning the limit.
    assert busy[0] < 0.02 and 0.19 < starts[0] < 0.3
