"""The controller of a runner deployment: validates specs and aggregates locations. No probing.

Runners write ``status.locations[]``; the controller reads them from the watch, counts them
against ``minFailedLocations``, and writes the top-level state, message and conditions, and the
Events, only when the verdict changes (plus the heartbeat). A location with no live runner is
reported as a condition and an Event instead of being silently ignored.

A probe request (the ``tcpmonitor.dev/requestedAt`` annotation) is handled by each location's
runner, which records it in its entry; the controller copies it to the top-level
``lastHandledProbeRequest`` once every wanted location with a live runner has handled it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ..api import (
    Condition,
    LocationStatus,
    MonitorState,
    ProbeResult,
    Reason,
    TcpMonitor,
    TcpMonitorSpec,
    TcpMonitorStatus,
)
from ..api.maintenance import (
    MAINTENANCE_ANNOTATION,
    maintenance_until,
    parse_maintenance_annotation,
)
from ..api.probe_request import probe_request
from ..api.result import MAX_MESSAGE
from ..api.spec import MIN_INTERVAL_SECONDS
from ..reporting import (
    EventSpec,
    SpecProblem,
    aggregated_conditions,
    check_spec,
    invalid_spec_event,
    location_unavailable_event,
    state_event,
    status_body,
)
from ..reporting.locations import deciding_result
from ..reporting.messages import verdict_detail, without_timings
from ..reporting.quorum import QuorumVerdict, aggregate
from ..scheduling.runtime import Key, MaterialResolver, MonitorRef
from ..telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# Fields that change with every probe (or every runner heartbeat); the controller's heartbeat
# carries them, a change of them alone does not cause a write.
_VOLATILE = frozenset(("lastProbeTime", "latency", "consecutiveSuccesses", "consecutiveFailures"))
# Of lastResult (a new one with each runner write), only these are a change worth a write: the
# rest (timings, addresses, which location among equals) rides along with the next write.
_RESULT_CHANGE = (("state",), ("error", "code"), ("tls", "certificate", "notAfter"))


def _stable(body: dict[str, Any]) -> dict[str, Any]:
    """The part of a status body whose change is worth a write."""
    stable = {k: v for k, v in body.items() if k not in _VOLATILE | {"lastResult", "conditions"}}
    # Messages quote the deciding result's timings, new with every runner write: compared
    # without them, so "Up in 1 of 2" -> "Up in 2 of 2" is a write and new timings are not.
    stable["message"] = without_timings(body.get("message") or "")
    stable["conditions"] = [
        c | {"message": without_timings(c.get("message") or "")} for c in body.get("conditions", [])
    ]
    result = body.get("lastResult")
    for path in _RESULT_CHANGE:
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        stable["lastResult." + ".".join(path)] = value
    return stable


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    # Per location, the newest of its state changes already accounted for; None until the
    # first evaluation, which starts from the stored top-level lastTransitionTime.
    seen: dict[str, datetime] | None = None
    requested: str | None = None  # the probe-request annotation's (usable) value
    handled: str | None = None  # the last request every live location handled
    maintenance_annotation: datetime | None = None  # tcpmonitor.dev/maintenance-until
    before_maintenance: MonitorState | None = None  # the state shown before the window
    maintenance_until: datetime | None = None  # the window open at the last evaluation


class Controller:
    def __init__(
        self,
        reporter: StatusWriter,
        resolver: MaterialResolver,
        metrics: Metrics,
        live_locations: Callable[[], set[str] | None],
        *,
        heartbeat: float = 60.0,
        min_interval: float = MIN_INTERVAL_SECONDS,
    ) -> None:
        self.reporter = reporter
        self.resolver = resolver
        self.metrics = metrics
        self.live_locations = live_locations
        self.heartbeat = heartbeat
        self.min_interval = min_interval
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
            entry.handled = status.last_handled_probe_request if status else None
            self._entries[ref.key] = entry
        entry.ref, entry.status = ref, status
        entry.requested = probe_request(meta.annotations)
        entry.maintenance_annotation = parse_maintenance_annotation(
            meta.annotations.get(MAINTENANCE_ANNOTATION)
        )
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
        spec, namespace = entry.spec, entry.ref.namespace
        _, entry.problem = await check_spec(
            spec, self.min_interval, lambda: self.resolver.resolve(spec, namespace)
        )
        problem = entry.problem
        if problem is not None and problem != previous:
            if problem.reason == Reason.REFERENCE_UNREADABLE:
                # Status says only "not found or not readable"; the platform team reads why.
                log.warning(
                    "reading references of %s/%s failed: %s", *entry.ref.key, problem.logged
                )
            self._event(entry, invalid_spec_event(problem))

    def _replay(self, entry: _Entry, entries: list[LocationStatus]) -> None:
        """Post what the locations went through that this controller did not see.

        kopf hands over the newest version of an object, and a watch that restarts lists only
        the current one: a location that went Down and Up again while the controller was not
        watching (the API server away, a failover, a burst of writes) would show only Up. Each
        entry carries its latest changes; those newer than what was accounted for are replayed
        in time order, and every verdict they pass through that differs from the current one
        gets its Event and a status transition. The last change is the entry's current state,
        which the normal evaluation handles.
        """
        spec = entry.spec
        mine = {e.name: e for e in entries if e.name in spec.locations}
        if entry.seen is None:
            # What the previous controller had seen when it last wrote: every change up to
            # the newest probe time it wrote (it writes at once on every verdict change).
            status = entry.status
            times = [status.last_transition_time, status.last_probe_time] if status else []
            stored = max((t for t in times if t is not None), default=None)
            entry.seen = dict.fromkeys(mine, stored) if stored else {}
            if stored is None:  # nothing to go by: account for everything as seen
                for name, e in mine.items():
                    if e.recent_transitions:
                        entry.seen[name] = e.recent_transitions[-1].time
        seen = entry.seen
        changes = sorted(
            (change.time, name, change.state)
            for name, e in mine.items()
            for change in e.recent_transitions
            if name not in seen or change.time > seen[name]
        )
        for name, e in mine.items():
            if e.recent_transitions:
                last = e.recent_transitions[-1].time
                seen[name] = max(seen[name], last) if name in seen else last
        if len(changes) < 2 or spec.paused or entry.maintenance_until is not None:
            return  # nothing is posted for what happened during a maintenance window
        states = {name: self._state_before(e, changes, entry.state) for name, e in mine.items()}
        for at, name, state in changes[:-1]:
            states[name] = state
            replayed = [e.model_copy(update={"state": states[e.name]}) for e in mine.values()]
            verdict = aggregate(
                spec.locations, spec.min_failed_locations, replayed, self.live_locations()
            )
            if verdict.state is not entry.state and verdict.state is not MonitorState.UNKNOWN:
                when = at.astimezone(UTC).strftime("%H:%M:%SZ")
                event = state_event(
                    entry.state, verdict.state, f"{verdict.message} (at {when}, seen late)"
                )
                if event is not None:
                    self._event(entry, event)
                entry.state, entry.last_transition = verdict.state, at

    @staticmethod
    def _state_before(
        location: LocationStatus,
        changes: list[tuple[datetime, str, MonitorState]],
        aggregated: MonitorState,
    ) -> MonitorState:
        """The location's state before its first change being replayed: the change before it
        in its history, or (older than the history) what the aggregate said."""
        first = next((at for at, name, _ in changes if name == location.name), None)
        if first is None:
            return location.state
        earlier = [c.state for c in location.recent_transitions if c.time < first]
        return earlier[-1] if earlier else aggregated

    def _evaluate(self, entry: _Entry) -> None:
        spec = entry.spec
        entries = entry.status.locations if entry.status else []
        now = datetime.now(UTC)
        entry.maintenance_until = maintenance_until(
            spec.maintenance, entry.maintenance_annotation, now
        )
        self._replay(entry, entries)
        verdict = aggregate(
            spec.locations, spec.min_failed_locations, entries, self.live_locations()
        )
        mine = [e for e in entries if e.name in spec.locations]
        result = deciding_result(spec.locations, mine)
        # What both the Events and the status say: with one location, the deciding result
        # described, as the all-in-one mode says it.
        detail = verdict_detail(verdict.message, result, len(spec.locations))
        # A spec problem shows in Ready; the state stays what the locations last reported,
        # as in the all-in-one mode (whose runners refuse the same spec and stop probing).
        # A maintenance window shows as Maintenance, without Events; the first verdict after
        # it is compared with the state before it (as the all-in-one's record does).
        state = (
            MonitorState.PAUSED
            if spec.paused
            else MonitorState.MAINTENANCE
            if entry.maintenance_until is not None
            else verdict.state
        )
        if state != entry.state:
            previous = entry.state
            if previous is MonitorState.MAINTENANCE:
                previous = entry.before_maintenance or MonitorState.UNKNOWN
            entry.before_maintenance = entry.state if state is MonitorState.MAINTENANCE else None
            event = state_event(previous, state, detail)
            if event is not None:
                self._event(entry, event)
            entry.state, entry.last_transition = state, now
        newly = frozenset(verdict.unavailable) - entry.unavailable
        if newly and not spec.paused:
            self._event(entry, location_unavailable_event(newly))
        entry.unavailable = frozenset(verdict.unavailable)
        self.metrics.set_state(entry.ref.key, state)
        self._write(entry, verdict, mine, result, detail, now)

    def _write(
        self,
        entry: _Entry,
        verdict: QuorumVerdict,
        mine: list[LocationStatus],
        result: ProbeResult | None,
        detail: str,
        now: datetime,
    ) -> None:
        probes = [e.last_probe_time for e in mine if e.last_probe_time]
        total = result.timings.total if result else None
        message = (
            f"{entry.problem.reason}: {entry.problem.message}"
            if entry.problem
            else "paused"
            if entry.state is MonitorState.PAUSED
            else f"maintenance until {_rfc3339(entry.maintenance_until)}; {detail}"
            if entry.maintenance_until is not None
            else detail
        )
        handled = self._handled(entry, mine)
        # Reachable and Degraded say what the locations see, also in a maintenance window.
        seen = verdict.state if entry.state is MonitorState.MAINTENANCE else entry.state
        conditions = aggregated_conditions(
            verdict,
            seen,
            detail,
            entry.problem,
            entry.generation,
            entry.conditions,
            now,
            entry.maintenance_until,
        )
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
            last_handled_probe_request=entry.handled,
        )
        body = status_body(status)
        stable = _stable(body)
        heartbeat_due = self._loop.time() - entry.written_at >= self.heartbeat
        changed = stable != _stable(entry.written)
        if changed or (heartbeat_due and body != entry.written):
            urgent = handled or stable.get("state") != entry.written.get("state")
            entry.written, entry.written_at, entry.conditions = body, self._loop.time(), conditions
            self.reporter.write_status(entry.ref, status, urgent=urgent)

    def _handled(self, entry: _Entry, mine: list[LocationStatus]) -> bool:
        """Whether the pending probe request is now handled: every wanted location with a live
        runner has probed for it (a location without one cannot, and says so elsewhere)."""
        requested = entry.requested
        if requested is None or requested == entry.handled:
            return False
        live = self.live_locations()
        wanted = [name for name in entry.spec.locations if live is None or name in live]
        by_name = {e.name: e.last_handled_probe_request for e in mine}
        if not wanted or any(by_name.get(name) != requested for name in wanted):
            return False
        entry.handled = requested
        return True

    def _event(self, entry: _Entry, event: EventSpec) -> None:
        self.reporter.post_event(entry.ref, event)
