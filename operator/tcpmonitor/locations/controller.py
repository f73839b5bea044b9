"""The controller of a runner deployment: validates specs and aggregates locations. No probing.

Runners write ``status.locations[]``; the controller reads them from the watch, counts them
against ``minFailedLocations``, and writes the top-level state, message and conditions, and the
Events, only when the verdict changes (plus the heartbeat). A location with no live runner is
reported as a condition and an Event instead of being silently ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ..api import Condition, MonitorState, TcpMonitor, TcpMonitorSpec, TcpMonitorStatus
from ..api.result import MAX_MESSAGE
from ..probe import PlanError, compile_plan
from ..reporting import (
    EventSpec,
    SpecProblem,
    invalid_spec_event,
    make_condition,
    status_body,
)
from ..reporting.locations import deciding_result
from ..reporting.quorum import QuorumVerdict, aggregate
from ..scheduling.runtime import Key, MaterialResolver, MonitorRef
from ..telemetry.metrics import Metrics

log = logging.getLogger(__name__)

_EVENTS = {
    MonitorState.UP: ("Normal", "TargetUp"),
    MonitorState.DOWN: ("Warning", "TargetDown"),
    MonitorState.DEGRADED: ("Warning", "TargetDegraded"),
}
# Fields that change with every probe (or every runner heartbeat); the controller's heartbeat
# carries them, a change of them alone does not cause a write.
_VOLATILE = ("lastProbeTime", "latency", "consecutiveSuccesses", "consecutiveFailures")
# Of lastResult (a new one with each runner write), only these are a change worth a write: the
# rest (timings, addresses, which location among equals) rides along with the next write.
_RESULT_CHANGE = (("state",), ("error", "code"), ("tls", "certificate", "notAfter"))


def _stable(body: dict[str, Any]) -> dict[str, Any]:
    """The part of a status body whose change is worth a write."""
    stable = {k: v for k, v in body.items() if k not in _VOLATILE and k != "lastResult"}
    result = body.get("lastResult")
    for path in _RESULT_CHANGE:
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        stable["lastResult." + ".".join(path)] = value
    return stable


class StatusWriter(Protocol):
    """Where the controller's verdicts go. Calls must not block."""

    def write_status(self, ref: MonitorRef, status: TcpMonitorStatus, *, urgent: bool) -> None: ...

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None: ...

    def forget(self, ref: MonitorRef) -> None: ...


@dataclass
class _Entry:
    ref: MonitorRef
    spec: TcpMonitorSpec
    generation: int | None
    state: MonitorState
    last_transition: datetime | None
    conditions: list[Condition]
    problem: SpecProblem | None = None
    unavailable: frozenset[str] = frozenset()
    written: dict[str, Any] = field(default_factory=dict)
    written_at: float = 0.0
    status: TcpMonitorStatus | None = None


class Controller:
    def __init__(
        self,
        reporter: StatusWriter,
        resolver: MaterialResolver,
        metrics: Metrics,
        live_locations: Callable[[], set[str] | None],
        *,
        heartbeat: float = 60.0,
    ) -> None:
        self.reporter = reporter
        self.resolver = resolver
        self.metrics = metrics
        self.live_locations = live_locations
        self.heartbeat = heartbeat
        self._entries: dict[Key, _Entry] = {}
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        return len(self._entries)

    async def apply(self, monitor: TcpMonitor) -> None:
        meta = monitor.metadata
        ref = MonitorRef(meta.namespace, meta.name, meta.uid)
        entry = self._entries.get(ref.key)
        status = monitor.status
        if entry is None:
            entry = _Entry(
                ref,
                monitor.spec,
                None,
                status.state if status and status.state else MonitorState.UNKNOWN,
                status.last_transition_time if status else None,
                list(status.conditions) if status else [],
            )
            self._entries[ref.key] = entry
        entry.ref, entry.status = ref, status
        if entry.generation != meta.generation or entry.spec != monitor.spec:
            entry.spec, entry.generation = monitor.spec, meta.generation
            await self._check_spec(entry)
        self._evaluate(entry)

    def remove(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.reporter.forget(entry.ref)
            self.metrics.forget(key)

    def refresh(self) -> None:
        """Re-evaluate every monitor, e.g. after runners came or went."""
        for entry in list(self._entries.values()):
            self._evaluate(entry)

    async def _check_spec(self, entry: _Entry) -> None:
        previous = entry.problem
        try:
            material = await self.resolver.resolve(entry.spec, entry.ref.namespace)
            compile_plan(entry.spec, material)
            entry.problem = None
        except PlanError as exc:
            entry.problem = SpecProblem(exc.reason, f"{exc.field}: {exc.message}")
        except Exception as exc:
            entry.problem = SpecProblem("ReferenceUnreadable", str(exc)[:500])
        if entry.problem is not None and entry.problem != previous:
            self._event(entry, invalid_spec_event(entry.problem))

    def _evaluate(self, entry: _Entry) -> None:
        spec = entry.spec
        entries = entry.status.locations if entry.status else []
        verdict = aggregate(
            spec.locations, spec.min_failed_locations, entries, self.live_locations()
        )
        now = datetime.now(UTC)
        if spec.paused:
            state = MonitorState.PAUSED
        elif entry.problem is not None:
            state = MonitorState.UNKNOWN
        else:
            state = verdict.state
        if state != entry.state:
            kind = _EVENTS.get(state)
            if kind is not None:
                self._event(
                    entry,
                    EventSpec(
                        kind[0], kind[1], f"{entry.state.value} -> {state.value}: {verdict.message}"
                    ),
                )
            entry.state, entry.last_transition = state, now
        newly = frozenset(verdict.unavailable) - entry.unavailable
        if newly and not spec.paused:
            self._event(
                entry,
                EventSpec(
                    "Warning",
                    "LocationUnavailable",
                    f"no live runner in {', '.join(sorted(newly))}: not probed there",
                ),
            )
        entry.unavailable = frozenset(verdict.unavailable)
        self.metrics.set_state(entry.ref.key, state)
        self._write(entry, verdict, now)

    def _conditions(self, entry: _Entry, verdict: QuorumVerdict, now: datetime) -> list[Condition]:
        gen, prev, state = entry.generation, entry.conditions, entry.state
        if entry.problem is not None:
            ready = ("False", entry.problem.reason, entry.problem.message)
        elif state is MonitorState.PAUSED:
            ready = ("True", "Paused", "probing is paused (spec.paused)")
        else:
            ready = ("True", "Probing", "the spec is valid and runners probe the target")
        if state in (MonitorState.UP, MonitorState.DEGRADED):
            reachable = ("True", "TargetReachable", verdict.message)
        elif state is MonitorState.DOWN:
            reachable = ("False", "TargetDown", verdict.message)
        else:
            reachable = ("Unknown", "NoResult", verdict.message)
        degraded = (
            ("True", "TargetDegraded", verdict.message)
            if state is MonitorState.DEGRADED
            else ("False", "NotDegraded", "")
        )
        if verdict.unavailable:
            available = (
                "False",
                "NoLiveRunner",
                f"no live runner in {', '.join(verdict.unavailable)}",
            )
        else:
            available = ("True", "RunnersAvailable", "every location has a live runner")
        return [
            make_condition(prev, "Ready", *ready, gen, now),
            make_condition(prev, "Reachable", *reachable, gen, now),
            make_condition(prev, "Degraded", *degraded, gen, now),
            make_condition(prev, "LocationsAvailable", *available, gen, now),
        ]

    def _write(self, entry: _Entry, verdict: QuorumVerdict, now: datetime) -> None:
        entries = entry.status.locations if entry.status else []
        mine = [e for e in entries if e.name in entry.spec.locations]
        probes = [e.last_probe_time for e in mine if e.last_probe_time]
        result = deciding_result(entry.spec.locations, mine)
        total = result.timings.total if result else None
        message = (
            f"{entry.problem.reason}: {entry.problem.message}"
            if entry.problem
            else "paused"
            if entry.state is MonitorState.PAUSED
            else verdict.message
        )
        conditions = self._conditions(entry, verdict, now)
        status = TcpMonitorStatus(
            observed_generation=entry.generation,
            state=entry.state,
            message=message[:MAX_MESSAGE],
            latency=None if total is None else f"{total:.1f}ms",
            conditions=conditions,
            last_result=result,
            last_probe_time=max(probes) if probes else None,
            last_transition_time=entry.last_transition,
            consecutive_successes=min((e.consecutive_successes for e in mine), default=0),
            consecutive_failures=max((e.consecutive_failures for e in mine), default=0),
        )
        body = status_body(status)
        stable = _stable(body)
        heartbeat_due = self._loop.time() - entry.written_at >= self.heartbeat
        changed = stable != _stable(entry.written)
        if changed or (heartbeat_due and body != entry.written):
            urgent = stable.get("state") != entry.written.get("state")
            entry.written, entry.written_at, entry.conditions = body, self._loop.time(), conditions
            self.reporter.write_status(entry.ref, status, urgent=urgent)

    def _event(self, entry: _Entry, event: EventSpec) -> None:
        self.metrics.events_posted.labels(event.reason).inc()
        self.reporter.post_event(entry.ref, event)
