"""A runner's shard and the controller's aggregation, without a cluster."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tcpmonitor.api import MonitorState, ProbeResult, Problem, TcpMonitor, Timings, Verdict
from tcpmonitor.api.result import Certificate, TlsInfo
from tcpmonitor.locations.assignment import owner
from tcpmonitor.locations.controller import Controller
from tcpmonitor.locations.runner_share import RunnerShard, location_view
from tcpmonitor.reporting import describe_result, status_body
from tcpmonitor.reporting.kept_result import keep
from tcpmonitor.reporting.locations import location_entry
from tcpmonitor.reporting.record import MonitorRecord
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.metrics import Metrics

from ..scheduling.test_runtime import DictResolver, MemoryReporter

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def monitor(
    name: str,
    locations: list[str],
    entries: list[dict[str, Any]] | None = None,
    generation: int = 1,
    **spec: Any,
) -> TcpMonitor:
    body: dict[str, Any] = {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": "ns", "generation": generation, "uid": name},
        "spec": {
            "host": "127.0.0.1",
            "port": 1,
            "interval": "10s",
            "timeout": "1s",
            "locations": locations,
            **spec,
        },
    }
    if entries is not None:
        body["status"] = {"locations": entries}
    return TcpMonitor.model_validate(body)


def entry(name: str, state: str, probed: datetime = NOW, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "lastProbeTime": probed.isoformat(),
        "consecutiveFailures": 4,
        **extra,
    }


def test_location_view_resumes_a_fresh_entry_and_reprobes_a_stale_one() -> None:
    fresh = location_view(
        monitor("m", ["eu"], [entry("eu", "Down")]), "eu", NOW + timedelta(seconds=5)
    )
    assert fresh.status is not None
    assert fresh.status.observed_generation == 1 and fresh.status.state is MonitorState.DOWN
    assert fresh.status.consecutive_failures == 4
    stale = location_view(
        monitor("m", ["eu"], [entry("eu", "Down")]), "eu", NOW + timedelta(seconds=60)
    )
    assert stale.status is not None and stale.status.observed_generation is None
    assert stale.status.consecutive_failures == 4  # counters survive the handover
    other = location_view(monitor("m", ["eu"], [entry("us", "Up")]), "eu", NOW)
    assert other.status is None


def test_shard_takes_only_its_location_and_its_share() -> None:
    async def scenario() -> tuple[set[Any], set[Any], set[Any]]:
        reporter = MemoryReporter()
        runtime = MonitorRuntime(reporter, DictResolver(), Metrics(), RuntimeSettings())
        shard = RunnerShard(runtime, "eu", "r1")
        names = [f"m{i}" for i in range(40)]
        for name in names:
            await shard.observe(("ns", name), monitor(name, ["eu"]))
        await shard.observe(("ns", "us-only"), monitor("us-only", ["us"]))
        before_members = set(shard.owned)  # nothing before the first membership list
        await shard.set_members(["r1", "r2"])
        first = set(shard.owned)
        await shard.set_members(["r1"])  # r2 died
        everything = set(shard.owned)
        await runtime.close()
        return before_members, first, everything

    before, first, everything = asyncio.run(scenario())
    assert before == set()
    expected = {("ns", f"m{i}") for i in range(40) if owner(f"ns/m{i}", ["r1", "r2"]) == "r1"}
    assert first == expected and 10 < len(first) < 30
    assert everything == {("ns", f"m{i}") for i in range(40)}


def test_shard_lets_go_when_the_location_is_removed_or_the_monitor_deleted() -> None:
    async def scenario() -> set[Any]:
        runtime = MonitorRuntime(MemoryReporter(), DictResolver(), Metrics(), RuntimeSettings())
        shard = RunnerShard(runtime, "eu", "r1")
        await shard.set_members(["r1"])
        await shard.observe(("ns", "a"), monitor("a", ["eu"]))
        await shard.observe(("ns", "b"), monitor("b", ["eu"]))
        await shard.observe(("ns", "a"), monitor("a", ["us"], generation=2))
        shard.forget(("ns", "b"))
        owned = set(shard.owned)
        assert len(runtime) == 0
        await runtime.close()
        return owned

    assert asyncio.run(scenario()) == set()


def controller_run(*objects: TcpMonitor, live: set[str] | None = None) -> MemoryReporter:
    reporter = MemoryReporter()

    async def scenario() -> None:
        ctl = Controller(reporter, DictResolver(), Metrics(), lambda: live)
        for obj in objects:
            await ctl.apply(obj)

    asyncio.run(scenario())
    return reporter


def test_controller_writes_the_quorum_verdict_and_events_on_transitions() -> None:
    reporter = controller_run(
        monitor("m", ["eu", "us"], [entry("eu", "Up"), entry("us", "Up")], minFailedLocations=2),
        monitor(
            "m",
            ["eu", "us"],
            [entry("eu", "Down", errorCode="CONNECT_TIMEOUT"), entry("us", "Up")],
            minFailedLocations=2,
        ),
        monitor(
            "m",
            ["eu", "us"],
            [
                entry("eu", "Down", errorCode="CONNECT_TIMEOUT"),
                entry("us", "Down", errorCode="CONNECT_TIMEOUT"),
            ],
            minFailedLocations=2,
        ),
        live={"eu", "us"},
    )
    states = [s.state for _, s, _ in reporter.writes]
    assert states == [MonitorState.UP, MonitorState.DEGRADED, MonitorState.DOWN]
    assert reporter.reasons("m") == ["TargetUp", "TargetDegraded", "TargetDown"]
    last = reporter.last("m")
    assert "Down in 2 of 2 locations (quorum 2)" in (last.message or "")
    assert last.consecutive_failures == 4
    reachable = next(c for c in last.conditions if c.type == "Reachable")
    assert (reachable.status, reachable.reason) == ("False", "ConnectTimeout")  # as all-in-one


def test_controller_does_not_rewrite_an_unchanged_verdict() -> None:
    later = NOW + timedelta(seconds=10)
    reporter = controller_run(
        monitor("m", ["eu"], [entry("eu", "Up")]),
        # a runner heartbeat: newer probe time, one more success
        monitor("m", ["eu"], [entry("eu", "Up", probed=later, consecutiveSuccesses=9)]),
        live={"eu"},
    )
    assert len(reporter.writes) == 1


def test_controller_reports_a_location_without_runners_once() -> None:
    reporter = controller_run(
        monitor("m", ["eu", "ap"], [entry("eu", "Up")]),
        monitor("m", ["eu", "ap"], [entry("eu", "Up", probed=NOW + timedelta(seconds=10))]),
        live={"eu"},
    )
    assert reporter.reasons("m").count("LocationUnavailable") == 1
    available = next(c for c in reporter.last("m").conditions if c.type == "LocationsAvailable")
    assert (available.status, available.reason) == ("False", "NoLiveRunner")
    assert "ap" in available.message


def test_controller_flags_an_invalid_spec() -> None:
    reporter = controller_run(
        monitor(
            "m",
            ["eu"],
            [],
            assertions=[
                {"source": "ResponseData", "comparison": "Matches", "target": r"\pL{1000}"}
            ],
        ),
        live={"eu"},
    )
    ready = next(c for c in reporter.last("m").conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert reporter.reasons("m") == ["InvalidSpec"]


def probed(
    name: str,
    state: str,
    at: datetime = NOW,
    total: float = 3.0,
    address: str = "10.0.0.1:443",
    not_after: datetime = NOW + timedelta(days=60),
) -> dict[str, Any]:
    """A location entry as a runner writes it, its full result included."""
    result = ProbeResult(
        state=Verdict(state),
        started_at=at,
        remote_address=address,
        timings=Timings(connect=1.0, tls=total - 1.0, total=total),
        error=Problem(code="CONNECT_TIMEOUT", message="timed out") if state == "Down" else None,
        tls=TlsInfo(
            version="TLSv1.3",
            verified=True,
            certificate=Certificate(
                subject="CN=db",
                issuer="CN=ca",
                dns_names=["db"],
                not_before=NOW - timedelta(days=30),
                not_after=not_after,
                days_remaining=60.0,
                sha256_fingerprint="AB:CD",
            ),
        ),
    )
    record = MonitorRecord(
        state=MonitorState(state),
        kept_result=keep(result),
        last_probe_time=at,
        consecutive_successes=1,
    )
    return location_entry(record, None, name, "r").model_dump(mode="json", by_alias=True)


def test_controller_writes_the_deciding_locations_result_as_last_result() -> None:
    reporter = controller_run(
        monitor(
            "m",
            ["eu", "us"],
            [probed("eu", "Up", NOW + timedelta(seconds=2)), probed("us", "Down", NOW, total=9.5)],
            minFailedLocations=2,
        ),
        live={"eu", "us"},
    )
    last = reporter.last("m")
    assert last.state is MonitorState.DEGRADED
    assert last.last_result is not None and last.last_result.location == "us"
    assert last.last_result.error is not None and last.last_result.error.code == "CONNECT_TIMEOUT"
    assert last.latency == "9.5ms"  # the same result as lastResult, as in the operator mode
    body = status_body(last)
    assert body["lastResult"]["tls"]["certificate"]["notAfter"] == "2027-01-20T12:00:00Z"


def test_controller_does_not_write_when_only_the_results_details_change() -> None:
    later = NOW + timedelta(seconds=10)
    reporter = controller_run(
        monitor("m", ["eu", "us"], [probed("eu", "Up"), probed("us", "Up", NOW, total=2.0)]),
        # new probes everywhere: new times, timings, addresses, and the other location is now
        # the most recent: all of it rides along with the next heartbeat
        monitor(
            "m",
            ["eu", "us"],
            [probed("eu", "Up", later, total=7.0, address="10.0.0.2:443"), probed("us", "Up")],
        ),
        live={"eu", "us"},
    )
    assert len(reporter.writes) == 1
    renewed = NOW + timedelta(days=90)
    reporter = controller_run(
        monitor("m", ["eu"], [probed("eu", "Up")]),
        monitor("m", ["eu"], [probed("eu", "Up", later, not_after=renewed)]),  # renewed
        live={"eu"},
    )
    assert len(reporter.writes) == 2
    certificate = reporter.last("m").last_result.tls.certificate  # type: ignore[union-attr]
    assert certificate is not None and certificate.not_after == renewed


def test_a_new_owner_resumes_the_locations_last_result() -> None:
    view = location_view(monitor("m", ["eu"], [probed("eu", "Down")]), "eu", NOW)
    assert view.status is not None and view.status.last_result is not None
    assert view.status.last_result.remote_address == "10.0.0.1:443"
    assert view.status.last_result.location == "eu"


def test_one_location_reads_as_the_all_in_one_reads() -> None:
    reporter = controller_run(monitor("m", ["eu"], [probed("eu", "Down", total=4.0)]), live={"eu"})
    last = reporter.last("m")
    assert last.last_result is not None
    described = describe_result(last.last_result)
    assert last.message == described and described.startswith("CONNECT_TIMEOUT")
    reachable = next(c for c in last.conditions if c.type == "Reachable")
    assert (reachable.reason, reachable.message) == ("ConnectTimeout", described)
    (event,) = [e for _, e in reporter.events]
    assert (event.reason, event.message) == ("TargetDown", f"Unknown -> Down: {described}")


def test_a_down_location_with_new_timings_is_not_a_write() -> None:
    # The message and the Reachable condition quote the timings; a runner heartbeat with new
    # ones, same state and error code, rides along with the next heartbeat.
    later = NOW + timedelta(seconds=10)
    reporter = controller_run(
        monitor("m", ["eu"], [probed("eu", "Down", total=4.0)]),
        monitor("m", ["eu"], [probed("eu", "Down", later, total=7.5)]),
        live={"eu"},
    )
    assert len(reporter.writes) == 1


def test_a_second_location_reporting_is_a_write() -> None:
    # "Up in 1 of 2 locations" -> "Up in 2 of 2 locations": the message changes with no
    # timing in it, so it is written at once, not with the heartbeat.
    reporter = controller_run(
        monitor("m", ["eu", "us"], [probed("eu", "Up")]),
        monitor("m", ["eu", "us"], [probed("eu", "Up"), probed("us", "Up")]),
        live={"eu", "us"},
    )
    assert [s.message for _, s, _ in reporter.writes] == [
        "Up in 1 of 2 locations",
        "Up in 2 of 2 locations",
    ]


class Gate:
    def __init__(self) -> None:
        self.log: list[str] = []

    def pause(self) -> None:
        self.log.append("pause")

    def resume(self) -> None:
        self.log.append("resume")


def test_a_fenced_runner_holds_writes_and_on_rejoining_drops_what_another_took_over() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        reporter = MemoryReporter()
        gate = Gate()
        runtime = MonitorRuntime(reporter, DictResolver(), Metrics(), RuntimeSettings())
        shard = RunnerShard(runtime, "eu", "r1", writes=gate)
        await shard.set_members(["r1"])
        for name in ("kept", "taken"):
            await shard.observe(
                ("ns", name), monitor(name, ["eu"], [entry("eu", "Up", runner="r1")])
            )
        shard.fence()
        # While cut off, r2 took "taken" over and wrote its entry; "kept" nobody touched.
        now = {
            ("ns", "kept"): monitor("kept", ["eu"], [entry("eu", "Up", runner="r1")]),
            ("ns", "taken"): monitor("taken", ["eu"], [entry("eu", "Down", runner="r2")]),
        }
        await shard.rejoin(now)
        await runtime.close()
        return gate.log, reporter.forgotten

    gate_log, forgotten = asyncio.run(scenario())
    assert gate_log == ["pause", "resume"]
    # Its queued writes dropped and the monitor resumed from r2's entry; "kept" untouched.
    assert forgotten == ["taken"]


def changes(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [
        {"state": state, "time": (NOW + timedelta(seconds=at)).isoformat()} for state, at in pairs
    ]


def test_controller_replays_a_flap_it_did_not_see() -> None:
    """The entry went Down and Up again while the controller was not watching (it sees only
    the newest version): the Down still gets its Event, in order, marked as seen late."""
    flapped = entry("eu", "Up", recentTransitions=changes(("Up", 0), ("Down", 30), ("Up", 40)))
    reporter = controller_run(
        monitor("m", ["eu"], [entry("eu", "Up", recentTransitions=changes(("Up", 0)))]),
        monitor("m", ["eu"], [flapped]),
        live={"eu"},
    )
    assert reporter.reasons("m") == ["TargetUp", "TargetDown", "TargetUp"]
    down = next(e for _, e in reporter.events if e.reason == "TargetDown")
    assert "seen late" in down.message and "12:00:30Z" in down.message


def test_controller_replays_across_locations_in_time_order_with_the_quorum() -> None:
    eu = entry("eu", "Up", recentTransitions=changes(("Up", 0), ("Down", 10), ("Up", 30)))
    us = entry("us", "Up", recentTransitions=changes(("Up", 0), ("Down", 20), ("Up", 40)))
    reporter = controller_run(
        monitor(
            "m",
            ["eu", "us"],
            [
                entry("eu", "Up", recentTransitions=changes(("Up", 0))),
                entry("us", "Up", recentTransitions=changes(("Up", 0))),
            ],
            minFailedLocations=2,
        ),
        monitor("m", ["eu", "us"], [eu, us], minFailedLocations=2),
        monitor("m", ["eu", "us"], [eu, us], minFailedLocations=2),  # no second replay
        live={"eu", "us"},
    )
    # eu Down (1 of 2: Degraded), both Down at 20 s (quorum: Down), eu Up at 30 s (Degraded),
    # us Up at 40 s: Up.
    assert reporter.reasons("m") == [
        "TargetUp",
        "TargetDegraded",
        "TargetDown",
        "TargetDegraded",
        "TargetUp",
    ]


def test_a_controller_that_starts_replays_only_what_came_after_the_stored_transition() -> None:
    stored_at = NOW + timedelta(seconds=35)
    history = changes(("Up", 0), ("Down", 30), ("Up", 50), ("Down", 60))
    m = monitor("m", ["eu"], [entry("eu", "Down", recentTransitions=history)])
    assert m.status is not None
    m = m.model_copy(
        update={
            "status": m.status.model_copy(
                update={"state": MonitorState.DOWN, "last_transition_time": stored_at}
            )
        }
    )
    reporter = controller_run(m, live={"eu"})
    # Down at 30 s was the previous controller's; Up at 50 s is replayed, Down at 60 s is now.
    assert reporter.reasons("m") == ["TargetUp", "TargetDown"]


def requested(m: TcpMonitor, value: str) -> TcpMonitor:
    meta = m.metadata.model_copy(update={"annotations": {"tcpmonitor.dev/requestedAt": value}})
    return m.model_copy(update={"metadata": meta})


def test_controller_reports_a_probe_request_handled_once_every_live_location_has() -> None:
    reporter = controller_run(
        requested(monitor("m", ["eu", "us", "ap"], [entry("eu", "Up"), entry("us", "Up")]), "r1"),
        requested(
            monitor(
                "m",
                ["eu", "us", "ap"],
                [entry("eu", "Up", lastHandledProbeRequest="r1"), entry("us", "Up")],
            ),
            "r1",
        ),
        requested(
            monitor(
                "m",
                ["eu", "us", "ap"],
                [
                    entry("eu", "Up", lastHandledProbeRequest="r1"),
                    entry("us", "Up", lastHandledProbeRequest="r1"),
                ],
            ),
            "r1",
        ),
        live={"eu", "us"},  # ap has no runner: it cannot hold the request up
    )
    handled = [s.last_handled_probe_request for _, s, _ in reporter.writes]
    assert handled[0] is None and handled[-1] == "r1"
    assert handled.count("r1") == 1 and reporter.writes[-1][2] is True  # urgent
    assert "r1" not in handled[:-1]


def in_maintenance(m: TcpMonitor, until: datetime) -> TcpMonitor:
    annotations = {"tcpmonitor.dev/maintenance-until": until.isoformat()}
    return m.model_copy(
        update={"metadata": m.metadata.model_copy(update={"annotations": annotations})}
    )


def test_controller_shows_maintenance_without_events_and_reports_the_state_after_it() -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    later = NOW + timedelta(seconds=10)
    reporter = controller_run(
        monitor("m", ["eu"], [entry("eu", "Up")]),
        in_maintenance(
            monitor("m", ["eu"], [entry("eu", "Down", errorCode="CONNECT_TIMEOUT")]), until
        ),
        in_maintenance(monitor("m", ["eu"], [entry("eu", "Up", later)]), until),
        in_maintenance(
            monitor("m", ["eu"], [entry("eu", "Down", later, errorCode="CONNECT_TIMEOUT")]), until
        ),
        monitor("m", ["eu"], [entry("eu", "Down", later, errorCode="CONNECT_TIMEOUT")]),
        live={"eu"},
    )
    states = [s.state for _, s, _ in reporter.writes]
    assert states[0] is MonitorState.UP and states[-1] is MonitorState.DOWN
    assert MonitorState.MAINTENANCE in states
    assert reporter.reasons("m") == ["TargetUp", "TargetDown"]
    during = next(s for _, s, _ in reporter.writes if s.state is MonitorState.MAINTENANCE)
    by_type = {c.type: (c.status, c.reason) for c in during.conditions}
    assert by_type["Ready"] == ("True", "Maintenance")
    assert by_type["Reachable"] == ("False", "ConnectTimeout")  # what the locations see
