"""The all-in-one operator and a runner deployment tell the same story about the same target.

One table of steps (probe results and spec changes) is fed to both paths: the all-in-one
runtime reporting to memory, and a runner's runtime writing its location's entry that the
controller aggregates (one location, minFailedLocations 1). After every step both must show
the same state, the same conditions (type, status, reason) and the same Events (type, reason).
``LocationsAvailable`` is the controller's alone: a runner deployment's, not a verdict's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tcpmonitor.api import (
    CONDITION_REASONS,
    EVENT_DOCS,
    ConditionType,
    LocationStatus,
    MonitorState,
    ProbeResult,
    Problem,
    TcpMonitor,
    Timings,
    Verdict,
)
from tcpmonitor.locations.controller import Controller
from tcpmonitor.locations.runner_share import location_view
from tcpmonitor.probe import ProbePlan
from tcpmonitor.reporting import EventSpec
from tcpmonitor.reporting.locations import location_entry
from tcpmonitor.scheduling.runtime import MonitorRef, MonitorRuntime, RuntimeSettings, StatusReport
from tcpmonitor.telemetry.metrics import Metrics

from ..scheduling.test_runtime import DictResolver, MemoryReporter

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LOCATION = "default"
BAD_REGEX = [{"source": "ResponseData", "comparison": "Matches", "target": r"\pL{1000}"}]


def result(state: Verdict, code: str | None = None, warning: str | None = None) -> ProbeResult:
    return ProbeResult(
        state=state,
        started_at=datetime.now(UTC),
        remote_address="10.0.0.1:5432",
        timings=Timings(connect=1.5, total=2.0),
        error=Problem(code=code, message="10.0.0.1:5432: Connection refused") if code else None,
        warnings=[Problem(code=warning, message="slow")] if warning else [],
    )


UP = result(Verdict.UP)
DOWN = result(Verdict.DOWN, "CONNECTION_REFUSED")
DEGRADED = result(Verdict.DEGRADED, warning="RESPONSE_TIME_DEGRADED")


@dataclass(frozen=True)
class Step:
    """A spec (as extra spec fields and a generation) applied, then optionally one probe."""

    name: str
    generation: int = 1
    spec: tuple[tuple[str, Any], ...] = ()
    probe: ProbeResult | None = None
    state: MonitorState | None = None  # expected in both modes
    reachable: str | None = None  # expected Reachable reason in both modes


STEPS = (
    Step("created, no result yet", state=MonitorState.UNKNOWN, reachable="NoResult"),
    Step("up", probe=UP, state=MonitorState.UP, reachable="TargetReachable"),
    Step("one failure, below the threshold", probe=DOWN, state=MonitorState.UP),
    Step("failureThreshold failures", probe=DOWN, state=MonitorState.DOWN),
    Step("down again", probe=DOWN, state=MonitorState.DOWN, reachable="ConnectionRefused"),
    Step("degraded", probe=DEGRADED, state=MonitorState.DEGRADED, reachable="TargetReachable"),
    Step("up again", probe=UP, state=MonitorState.UP),
    Step("a spec problem", generation=2, spec=(("assertions", BAD_REGEX),), state=MonitorState.UP),
    Step("paused", generation=3, spec=(("paused", True),), state=MonitorState.PAUSED),
    Step("resumed and down", generation=4, probe=DOWN, state=MonitorState.DOWN),
)


def monitor(step: Step, entries: list[LocationStatus] | None = None) -> TcpMonitor:
    body: dict[str, Any] = {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": "m", "namespace": "ns", "generation": step.generation, "uid": "u"},
        "spec": {
            "host": "10.0.0.1",
            "port": 5432,
            "interval": "10s",
            "timeout": "1s",
            "failureThreshold": 2,
            "successThreshold": 1,
            "locations": [LOCATION],
            "minFailedLocations": 1,
            **dict(step.spec),
        },
    }
    if entries is not None:
        body["status"] = {"locations": [e.model_dump(mode="json", by_alias=True) for e in entries]}
    return TcpMonitor.model_validate(body)


class EntryReporter:
    """A runner's reporter reduced to what reaches the API: its location's entry."""

    def __init__(self) -> None:
        self.entry: LocationStatus | None = None
        self.logged: list[EventSpec] = []  # left to the controller

    def write_status(self, ref: MonitorRef, report: StatusReport, *, urgent: bool) -> None:
        self.entry = location_entry(report.record, report.problem, LOCATION, "runner-1")

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        self.logged.append(event)

    def forget(self, ref: MonitorRef) -> None:
        pass


class Script:
    """A runtime's probe function: the result the step calls for, once; without one, a probe
    never ends (as if the target took its time), so only scripted results are folded."""

    def __init__(self) -> None:
        self.next: ProbeResult | None = None
        self.probes = 0

    async def __call__(self, plan: ProbePlan) -> ProbeResult:
        result, self.next = self.next, None
        if result is None:
            await asyncio.Event().wait()
        assert result is not None
        self.probes += 1
        return result


Seen = tuple[MonitorState | None, list[tuple[str, str, str]], list[tuple[str, str]]]


def seen(reporter: MemoryReporter) -> Seen:
    status = reporter.last("m")
    conditions = [
        (c.type, c.status, c.reason)
        for c in status.conditions
        if c.type != ConditionType.LOCATIONS_AVAILABLE
    ]
    return status.state, conditions, [(e.type, e.reason) for _, e in reporter.events]


async def run_both() -> list[tuple[Step, Seen, Seen]]:
    settings = RuntimeSettings()
    all_in_one, one_script = MemoryReporter(), Script()
    runtime = MonitorRuntime(all_in_one, DictResolver(), Metrics(), settings, probe=one_script)
    runner_reporter, runner_script = EntryReporter(), Script()
    runner = MonitorRuntime(
        runner_reporter, DictResolver(), Metrics(), settings, probe=runner_script
    )
    controlled = MemoryReporter()
    controller = Controller(controlled, DictResolver(), Metrics(), lambda: {LOCATION})
    key = ("ns", "m")
    observed = []
    try:
        for step in STEPS:
            one_script.next = runner_script.next = step.probe
            obj = monitor(step)
            await runtime.apply(obj)
            await runner.apply(location_view(obj, LOCATION))
            await asyncio.sleep(0.02)  # a new spec is probed at once
            # Otherwise what the scheduler does on the monitor's slot (10s away).
            if one_script.next is not None:
                await runtime._probe(key)
            if runner_script.next is not None:
                await runner._probe(key)
            entries = [runner_reporter.entry] if runner_reporter.entry else []
            await controller.apply(monitor(step, entries))
            observed.append((step, seen(all_in_one), seen(controlled)))
        probed = sum(1 for step in STEPS if step.probe is not None)
        assert one_script.probes == runner_script.probes == probed
    finally:
        await runtime.close()
        await runner.close()
    return observed


OBSERVED: list[tuple[Step, Seen, Seen]] = []


def observed() -> list[tuple[Step, Seen, Seen]]:
    if not OBSERVED:
        OBSERVED.extend(asyncio.run(run_both()))
    return OBSERVED


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[s.name for s in STEPS])
def test_both_modes_show_the_same_state_conditions_and_events(index: int) -> None:
    step, one, distributed = observed()[index]
    assert one == distributed
    state, conditions, _ = one
    if step.state is not None:
        assert state is step.state
    if step.reachable is not None:
        reachable = next(c for c in conditions if c[0] == ConditionType.REACHABLE)
        assert reachable[2] == step.reachable


def test_the_story_is_the_expected_one() -> None:
    *_, (_, (_, conditions, events), _) = observed()
    assert events == [
        ("Normal", "TargetUp"),
        ("Warning", "TargetDown"),
        ("Warning", "TargetDegraded"),
        ("Normal", "TargetUp"),
        ("Warning", "InvalidSpec"),
        ("Warning", "TargetDown"),
    ]
    assert conditions == [
        ("Ready", "True", "Probing"),
        ("Reachable", "False", "ConnectionRefused"),
        ("Degraded", "False", "NotDegraded"),
    ]


def test_every_reason_written_is_in_the_vocabulary() -> None:
    documented = {(r.type.value, r.status, r.reason.value) for r in CONDITION_REASONS if r.reason}
    events = {reason.value for reason in EVENT_DOCS}
    for _, one, distributed in observed():
        for _, conditions, posted in (one, distributed):
            for condition in conditions:
                if condition[:2] == ("Reachable", "False"):
                    continue  # the error code in CamelCase
                assert condition in documented
            assert {reason for _, reason in posted} <= events
