"""A namespace's limits from the policy: monitors, minimum interval, probes at once; and the
fair gate's per-namespace caps behind them. Real asyncio, loopback targets."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tcpmonitor.api import MonitorState, ProbeResult, TcpMonitorStatus
from tcpmonitor.policy import PolicyBook
from tcpmonitor.probe import ProbePlan, run_probe
from tcpmonitor.scheduling import FairGate, Scheduler
from tcpmonitor.scheduling.namespace_limits import (
    NO_LIMITS,
    NamespaceLimits,
    NamespaceRoster,
    no_limits,
)
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.metrics import Metrics

from ..policy.test_targets import policy as make_policy
from ..servers import serve, silent
from .test_runtime import DictResolver, MemoryReporter, monitor


class Policy:
    """A limits source the test changes as a platform team would change the policy."""

    def __init__(self, **limits: NamespaceLimits) -> None:
        self.limits = dict(limits)
        self.calls = 0

    def __call__(self, namespace: str) -> NamespaceLimits:
        self.calls += 1
        return self.limits.get(namespace, NO_LIMITS)


def ready(status: TcpMonitorStatus) -> tuple[str, str, str]:
    c = next(c for c in status.conditions if c.type == "Ready")
    return c.status, c.reason, c.message


# -- the limits and the roster ---------------------------------------------------------------


def test_default_source_sets_no_limits() -> None:
    assert no_limits("any") == NamespaceLimits() == NamespaceLimits(None, None, None)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_monitors": -1},
        {"min_interval": 0.0},
        {"min_interval": float("nan")},
        {"max_concurrent_probes": 0},
    ],
)
def test_limits_that_mean_nothing_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        NamespaceLimits(**bad)  # type: ignore[arg-type]


def test_roster_ranks_names_in_order_whatever_the_arrival_order() -> None:
    roster = NamespaceRoster()
    for name in ("c", "a", "d", "b"):
        roster.add("t", name)
    roster.add("t", "a")  # twice: no duplicate
    roster.add("other", "a")
    assert [roster.at("t", i) for i in range(roster.count("t"))] == ["a", "b", "c", "d"]
    assert roster.rank("t", "c") == 2 and roster.rank("t", "x") is None
    assert roster.remove("t", "b") == 1 and roster.rank("t", "c") == 1
    assert roster.remove("t", "b") is None
    assert roster.count("other") == 1 and sorted(roster.namespaces()) == ["other", "t"]


# -- the gate --------------------------------------------------------------------------------


def test_a_group_cap_from_the_policy_is_read_at_each_hand_out() -> None:
    async def scenario() -> tuple[int, int, int, bool]:
        caps = {"noisy": 2}
        gate: FairGate[str] = FairGate(capacity=10, per_group=8, cap_of=caps.get)
        for _ in range(2):
            await gate.acquire("noisy", 0.0)
        waiters = [asyncio.create_task(gate.acquire("noisy", float(i))) for i in range(6)]
        await asyncio.sleep(0.01)
        capped = gate.running("noisy")
        await asyncio.wait_for(gate.acquire("quiet", 0.0), 0.1)  # unlimited: served at once
        caps["noisy"] = 5  # the policy raised it
        gate.caps_changed()
        await asyncio.sleep(0.01)
        raised = gate.running("noisy")
        caps["noisy"] = 1  # lowered: running probes finish, no new ones until under it
        for _ in range(5):
            gate.release("noisy")
        await asyncio.sleep(0.01)
        lowered = gate.running("noisy")
        still_waiting = sum(not w.done() for w in waiters)
        for w in waiters:
            w.cancel()
        return capped, raised, lowered, still_waiting == 2

    capped, raised, lowered, waiting = asyncio.run(scenario())
    assert capped == 2
    assert raised == 5
    assert lowered == 1
    assert waiting  # six waiters: three served by the raise, one after the lowering


def test_a_cap_above_the_per_group_share_does_not_raise_it() -> None:
    async def scenario() -> int:
        gate: FairGate[str] = FairGate(capacity=4, per_group=3, cap_of=lambda g: 100)
        tasks = [asyncio.create_task(gate.acquire("g", 0.0)) for _ in range(4)]
        await asyncio.sleep(0.01)
        running = gate.running("g")
        for t in tasks:
            t.cancel()
        return running

    assert asyncio.run(scenario()) == 3


def test_capped_groups_are_not_scanned_again_at_every_hand_out() -> None:
    """Thousands of namespaces each at its cap with probes waiting: a probe of another
    namespace is served at once, and the hand-out does not ask about the capped ones again."""

    async def scenario() -> tuple[int, int, float]:
        calls = Counter[str]()

        def cap_of(group: str) -> int:
            calls[group] += 1
            return 1

        groups = [f"ns{i}" for i in range(3000)]
        gate: FairGate[str] = FairGate(capacity=10_000, per_group=5, cap_of=cap_of)
        for group in groups:
            await gate.acquire(group, 0.0)
        waiters = [asyncio.create_task(gate.acquire(g, 1.0)) for g in groups]
        await asyncio.sleep(0.01)  # every group now waits at its cap
        calls.clear()
        t0 = time.perf_counter()
        for i in range(100):
            await asyncio.wait_for(gate.acquire(f"new{i}", 0.0), 0.1)
        elapsed = time.perf_counter() - t0
        asked = sum(calls.values())
        gate.release("ns7")  # one capped group ends a probe: its waiter goes next
        await asyncio.sleep(0.01)
        served = sum(w.done() for w in waiters)
        for w in waiters:
            w.cancel()
        return asked, served, elapsed

    asked, served, elapsed = asyncio.run(scenario())
    assert asked <= 100  # the new groups only, not 3000 capped ones per hand-out
    assert served == 1
    assert elapsed < 0.5


# -- the scheduler ---------------------------------------------------------------------------


def test_the_scheduler_caps_a_namespace_by_its_own_limit() -> None:
    async def scenario() -> tuple[int, float]:
        starts: dict[tuple[str, str], float] = {}
        running = Counter[str]()
        most = Counter[str]()

        async def probe(key: tuple[str, str]) -> None:
            starts[key] = asyncio.get_running_loop().time()
            running[key[0]] += 1
            most[key[0]] = max(most[key[0]], running[key[0]])
            try:
                await asyncio.sleep(5)  # a blackholed target: holds the slot
            finally:
                running[key[0]] -= 1

        caps = {"noisy": 3}
        scheduler: Scheduler[tuple[str, str]] = Scheduler(
            probe, max_concurrency=16, group_of=lambda k: k[0], cap_of_group=caps.get
        )
        for i in range(200):
            scheduler.schedule(("noisy", f"m{i}"), 10, immediate=True)
        await asyncio.sleep(0.05)
        t0 = asyncio.get_running_loop().time()
        for i in range(10):
            scheduler.schedule(("quiet", f"q{i}"), 10, immediate=True)
        await asyncio.sleep(0.05)
        quiet = [starts[("quiet", f"q{i}")] - t0 for i in range(10) if ("quiet", f"q{i}") in starts]
        await scheduler.close()
        return most["noisy"], max(quiet) if len(quiet) == 10 else float("inf")

    noisy_peak, quiet_latest = asyncio.run(scenario())
    assert noisy_peak == 3
    assert quiet_latest < 0.02


# -- the runtime -----------------------------------------------------------------------------


def limited_runtime(reporter: MemoryReporter, policy: Policy, **settings: float) -> MonitorRuntime:
    return MonitorRuntime(
        reporter,
        DictResolver(),
        Metrics(),
        RuntimeSettings(**settings),  # type: ignore[arg-type]
        namespace_limits=policy,
    )


def test_monitors_beyond_the_namespace_limit_are_refused_in_name_order() -> None:
    reporter = MemoryReporter()
    policy = Policy(t=NamespaceLimits(max_monitors=3))

    async def scenario() -> tuple[set[str], set[str], set[str]]:
        async with serve(silent) as port:
            rt = limited_runtime(reporter, policy)
            for name in ("e", "b", "d", "a", "c"):  # any order: the limit counts by name
                await rt.apply(monitor(name, namespace="t", port=port, interval="10s"))
            await rt.apply(monitor("z", namespace="other", port=port, interval="10s"))
            await asyncio.sleep(0.1)
            up = {n for n in "abcde" if rt.state_of(("t", n)) is MonitorState.UP}
            scheduled = {k[1] for k in rt._monitors if k in rt.scheduler}
            rt.remove(("t", "a"))  # a place frees: "d" moves in
            await asyncio.sleep(0.1)
            after_removal = {n for n in "bcde" if ("t", n) in rt.scheduler}
            await rt.close()
            return up, scheduled, after_removal

    up, scheduled, after_removal = asyncio.run(scenario())
    assert up == {"a", "b", "c"}
    assert scheduled == {"a", "b", "c", "z"}
    assert after_removal == {"b", "c", "d"}
    # "e" and "d" came first and were probed; "a" and "c", arriving later, pushed them out.
    for name in ("d", "e"):
        refused = [ready(s) for n, s, _ in reporter.writes if n == name and ready(s)[0] == "False"]
        status, reason, message = refused[0]
        assert (status, reason) == ("False", "NamespaceLimitExceeded")
        assert 'refused by policy: namespace "t" may have at most 3 monitors' in message
    refusals = Counter(n for n, e in reporter.events if "NamespaceLimitExceeded" in e.message)
    assert refusals == {"d": 1, "e": 1}  # one Warning Event each
    assert reporter.last("d").state is MonitorState.UP  # probed once it moved in


def test_a_refused_monitor_reads_no_references_and_a_spec_change_keeps_it_refused() -> None:
    reporter = MemoryReporter()
    policy = Policy(t=NamespaceLimits(max_monitors=1))

    async def scenario() -> int:
        async with serve(silent) as port:
            rt = limited_runtime(reporter, policy)
            await rt.apply(monitor("a", namespace="t", port=port, interval="10s"))
            # Its Secret does not exist: a refused monitor must not even look for it.
            ref = {"secretKeyRef": {"name": "missing", "key": "k"}}
            await rt.apply(monitor("b", namespace="t", port=port, interval="10s", sendFrom=ref))
            await rt.apply(
                monitor("b", generation=2, namespace="t", port=port, interval="20s", sendFrom=ref)
            )
            await asyncio.sleep(0.05)
            started = rt.scheduler.stats.probes_started
            await rt.close()
            return started

    assert asyncio.run(scenario()) == 1
    status, reason, _ = ready(reporter.last("b"))
    assert (status, reason) == ("False", "NamespaceLimitExceeded")
    assert reporter.last("b").observed_generation == 2
    assert reporter.reasons("b") == ["InvalidSpec"]  # one Event, no ReferenceNotFound


def test_an_interval_below_the_namespace_floor_is_refused_not_stretched() -> None:
    reporter = MemoryReporter()
    policy = Policy(t=NamespaceLimits(min_interval=30.0))

    async def scenario() -> tuple[int, bool]:
        async with serve(silent) as port:
            rt = limited_runtime(reporter, policy, problem_retry=0.05)
            await rt.apply(monitor("fast", namespace="t", port=port, interval="10s"))
            await rt.apply(monitor("slow", namespace="t", port=port, interval="30s"))
            await rt.apply(monitor("elsewhere", namespace="u", port=port, interval="10s"))
            await asyncio.sleep(0.3)  # several retries of the refused one
            started = rt.scheduler.stats.probes_started
            fast_scheduled = ("t", "fast") in rt.scheduler
            await rt.close()
            return started, fast_scheduled

    started, fast_scheduled = asyncio.run(scenario())
    assert started == 2 and not fast_scheduled
    status, reason, message = ready(reporter.last("fast"))
    assert (status, reason) == ("False", "IntervalTooShort")
    assert (
        'refused by policy: spec.interval: 10s is below the minimum of 30s for namespace "t"'
        in message
    )
    assert reporter.reasons("fast") == ["InvalidSpec"]
    assert reporter.last("slow").state is MonitorState.UP
    assert reporter.last("elsewhere").state is MonitorState.UP


def test_the_installation_minimum_still_wins_when_it_is_the_higher_one() -> None:
    reporter = MemoryReporter()
    policy = Policy(t=NamespaceLimits(min_interval=2.0))

    async def scenario() -> None:
        async with serve(silent) as port:
            rt = limited_runtime(reporter, policy, min_interval=5.0)
            await rt.apply(monitor("m", namespace="t", port=port, interval="3s"))
            await rt.close()

    asyncio.run(scenario())
    _, reason, message = ready(reporter.last("m"))
    assert reason == "IntervalTooShort"
    assert "minimum of 5s set for this installation" in message


def test_reapplying_limits_stops_and_starts_monitors_without_touching_the_others() -> None:
    reporter = MemoryReporter()
    policy = Policy(t=NamespaceLimits(max_monitors=1))

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        async with serve(silent) as port:
            rt = limited_runtime(reporter, policy)
            for name in ("a", "b", "c"):
                await rt.apply(monitor(name, namespace="t", port=port, interval="10s"))
            await rt.apply(monitor("x", namespace="u", port=port, interval="10s"))
            await asyncio.sleep(0.05)
            first = rt.scheduler.stats.probes_started  # a and x
            policy.limits["t"] = NamespaceLimits(max_monitors=3)
            rt.reapply_limits()
            await asyncio.sleep(0.05)
            seen["raised"] = rt.scheduler.stats.probes_started - first  # b and c only
            seen["b"] = rt.state_of(("t", "b"))
            policy.limits["t"] = NamespaceLimits(max_monitors=2)
            rt.reapply_limits()
            seen["lowered"] = sorted(k[1] for k in rt._monitors if k in rt.scheduler)
            policy.limits["u"] = NamespaceLimits(min_interval=60.0)
            rt.reapply_limits()
            await asyncio.sleep(0.05)
            seen["floor_raised"] = ("u", "x") in rt.scheduler
            policy.limits["u"] = NO_LIMITS
            rt.reapply_limits()
            await asyncio.sleep(0.05)
            seen["floor_lowered"] = ("u", "x") in rt.scheduler
            await rt.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["raised"] == 2 and seen["b"] is MonitorState.UP
    assert seen["lowered"] == ["a", "b", "x"]
    assert seen["floor_raised"] is False and seen["floor_lowered"] is True
    _, reason, message = ready(reporter.last("c"))
    assert reason == "NamespaceLimitExceeded" and "at most 2 monitors" in message
    assert ready(reporter.last("x"))[:2] == ("True", "Probing")
    # "a" was never restarted: one immediate probe, one TargetUp, no new write after it.
    assert reporter.reasons("a") == ["TargetUp"]


def test_a_namespace_probe_limit_bounds_its_probes_and_follows_the_policy() -> None:
    reporter = MemoryReporter()
    policy = Policy(noisy=NamespaceLimits(max_concurrent_probes=2))

    async def scenario() -> tuple[int, int, bool]:
        release = asyncio.Event()
        running = Counter[str]()
        most = Counter[str]()
        quiet_done = asyncio.Event()

        async def probe(plan: ProbePlan) -> ProbeResult:
            group = "noisy" if plan.port == 2 else "quiet"
            running[group] += 1
            most[group] = max(most[group], running[group])
            try:
                if group == "noisy":
                    await release.wait()  # a blackholed target
                result = await run_probe(plan)
                if group == "quiet":
                    quiet_done.set()
                return result
            finally:
                running[group] -= 1

        async with serve(silent) as port:
            rt = MonitorRuntime(
                reporter,
                DictResolver(),
                Metrics(),
                RuntimeSettings(max_concurrency=8),
                probe=probe,
                namespace_limits=policy,
            )
            for i in range(10):
                await rt.apply(monitor(f"n{i}", namespace="noisy", port=2, interval="10s"))
            await asyncio.sleep(0.05)
            capped = most["noisy"]
            await rt.apply(monitor("q", namespace="quiet", port=port, interval="10s"))
            await asyncio.wait_for(quiet_done.wait(), 0.5)
            policy.limits["noisy"] = NamespaceLimits(max_concurrent_probes=5)
            rt.reapply_limits()
            await asyncio.sleep(0.05)
            raised = most["noisy"]
            release.set()
            await rt.close()
            return capped, raised, quiet_done.is_set()

    capped, raised, quiet = asyncio.run(scenario())
    assert capped == 2 and raised == 5 and quiet


def test_a_monitor_recreated_under_its_name_keeps_its_place_and_nobody_flaps() -> None:
    reporter = MemoryReporter()
    policy = Policy(t=NamespaceLimits(max_monitors=1))

    async def scenario() -> tuple[bool, bool]:
        async with serve(silent) as port:
            rt = limited_runtime(reporter, policy)
            await rt.apply(monitor("a", namespace="t", port=port, interval="10s"))
            await rt.apply(monitor("b", namespace="t", port=port, interval="10s"))
            again = monitor("a", namespace="t", port=port, interval="10s")
            meta = again.metadata.model_copy(update={"uid": "uid-a-2"})
            await rt.apply(again.model_copy(update={"metadata": meta}))  # deleted, re-created
            await asyncio.sleep(0.05)
            a_probed, b_probed = ("t", "a") in rt.scheduler, ("t", "b") in rt.scheduler
            rt.remove(("t", "b"))  # the refused one goes: nothing else changes
            await rt.close()
            return a_probed, b_probed

    a_probed, b_probed = asyncio.run(scenario())
    assert a_probed and not b_probed
    assert reporter.reasons("b") == ["InvalidSpec"]
    assert [ready(s)[0] for n, s, _ in reporter.writes if n == "b"] == ["False"]


def test_a_tcpmonitorpolicy_feeds_the_limits_and_its_changes_act_at_once() -> None:
    """The runtime given the process's PolicyBook takes the limits from it and re-applies them
    when a policy changes: no restart, no limits source of its own."""
    book = PolicyBook(builtin=False)  # loopback targets: only the limits are under test
    book.put_policy(make_policy("team", limits={"maxMonitors": 1}))

    async def scenario() -> tuple[set[str], set[str]]:
        async with serve(silent) as port:
            rt = MonitorRuntime(MemoryReporter(), DictResolver({}), Metrics(), policy=book)
            for name in ("a", "b"):
                await rt.apply(monitor(name, namespace="t", port=port, interval="10s"))
            await asyncio.sleep(0.1)
            limited = {k[1] for k in rt._monitors if k in rt.scheduler}
            book.drop_policy("team")
            await asyncio.sleep(0.1)
            freed = {k[1] for k in rt._monitors if k in rt.scheduler}
            await rt.close()
            return limited, freed

    limited, freed = asyncio.run(scenario())
    assert limited == {"a"}
    assert freed == {"a", "b"}
