"""The scheduler with a fast fake probe: timing, spreading, overlap, cancellation."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Hashable

import pytest

from tcpmonitor.scheduling import Scheduler, phase_of


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
