"""A set of monitors being probed: desired specs in, statuses, Events and metrics out.

Shared by the operator (specs from a watch, reports to the API server), the standalone mode
(specs from files, reports to the log) and runners. It owns the per-monitor bookkeeping:
compiling specs, resolving references, feeding the scheduler, folding results into the state
machine, and deciding when a status write is worth its cost (transitions, spec changes, a
heartbeat) so that ten thousand healthy monitors do not flood the API server.

A namespace's limits from the platform's policy (``namespace_limits``) act here: the monitors
beyond its ``max_monitors`` (in name order) are refused and never probed, an interval below its
``min_interval`` is refused like one below the installation's, and its
``max_concurrent_probes`` caps its share of the probe slots. ``reapply_limits`` re-reads them.

A new value of the probe-request annotation (``tcpmonitor.dev/requestedAt``) probes the monitor
at once, through the same probe slots and without moving its schedule; the status write after
that probe carries the value as ``lastHandledProbeRequest``.

Maintenance windows (``spec.maintenance``, the ``tcpmonitor.dev/maintenance-until`` annotation)
are looked up on every result: inside one the state shows Maintenance and no state Events are
posted; when one closes the monitor is probed at once, so its real state shows without waiting
for the next slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from ..api import (
    ConditionType,
    MonitorState,
    ObjectMeta,
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
from ..api.probe_request import PROBE_REQUEST_ANNOTATION, probe_request_problem
from ..api.spec import MIN_INTERVAL_SECONDS
from ..policy import PolicyBook
from ..probe import ProbeMaterial, ProbePlan, run_probe
from ..probe.material import has_references
from ..reporting import (
    INTERVAL_TOO_SHORT,
    ConditionMark,
    EventSpec,
    PolicyFloor,
    SpecProblem,
    bounds_problem,
    build_status,
    check_spec,
    condition_marks,
    expiring_event,
    invalid_spec_event,
    namespace_limit_problem,
    probe_error,
    probe_error_event,
    skipped_event,
    transition_event,
)
from ..reporting.record import MonitorRecord, advance, newly_expiring, pause, skip
from ..telemetry.metrics import Metrics
from .namespace_limits import LimitsSource, NamespaceRoster, no_limits
from .scheduler import SKIP_CONCURRENCY, Scheduler

log = logging.getLogger(__name__)

Key = tuple[str, str]

# How much of a probe-request annotation is kept to tell a new value from the last one: valid
# values are at most MAX_PROBE_REQUEST long; a longer (invalid) one is logged once, not kept.
_SEEN_BOUND = 128


@dataclass(frozen=True, slots=True)
class MonitorRef:
    """Which object a report is about; ``uid`` lets Events point at the exact object."""

    namespace: str
    name: str
    uid: str | None = None
    # Built once: the same tuple keys the runtime's, the scheduler's and the metrics' tables.
    key: Key = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.namespace, self.name))


@dataclass(frozen=True)
class StatusReport:
    """One status write: the record it is made of, the spec problem if any, and the status the
    operator and standalone mode write; a runner writes its location's entry from the record."""

    record: MonitorRecord
    problem: SpecProblem | None
    status: TcpMonitorStatus


class Reporter(Protocol):
    """Where results go. Calls must not block: implementations queue and write elsewhere."""

    def write_status(self, ref: MonitorRef, report: StatusReport, *, urgent: bool) -> None: ...

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None: ...

    def forget(self, ref: MonitorRef) -> None: ...


class MaterialResolver(Protocol):
    """Reads what a spec references; raises PlanError (missing) or any error (unreadable)."""

    async def resolve(self, spec: TcpMonitorSpec, namespace: str) -> ProbeMaterial: ...


@dataclass
class RuntimeSettings:
    heartbeat: float = 60.0  # seconds between status writes when nothing changes
    reference_refresh: float = 60.0  # re-read Secrets/ConfigMaps this often
    problem_retry: float = 5.0  # retry an unusable spec (a Secret may appear) this often
    max_concurrency: int = 256
    # Slots one namespace may hold; None: three quarters of max_concurrency.
    max_concurrency_per_namespace: int | None = None
    # Liveness fails when the scheduler's timer has not fired this long past a due slot.
    stall_limit: float = 30.0
    # The platform's floor for spec.interval; the schema's own floor unless raised (--min-interval).
    min_interval: float = MIN_INTERVAL_SECONDS


@dataclass(slots=True)
class _Monitor:
    ref: MonitorRef
    spec: TcpMonitorSpec
    generation: int | None
    record: MonitorRecord
    conditions: tuple[ConditionMark, ...]
    plan: ProbePlan | None = None
    problem: SpecProblem | None = None
    fault: SpecProblem | None = None  # an unexpected exception while probing (ProbeError)
    fault_type: str | None = None  # its exception type: one Event per type, not per probe
    refused: SpecProblem | None = None  # beyond its namespace's max_monitors: not probed
    floor: float | None = None  # the namespace's policy min_interval at the last spec check
    version: int = 0
    last_write: float = -math.inf
    resolved_at: float = -math.inf
    fresh: bool = False
    requested: str | None = None  # a probe request not yet handled
    request_seen: str | None = None  # the annotation's last value (bounded), to act once
    maintenance_annotation: datetime | None = None  # tcpmonitor.dev/maintenance-until
    window_closes: asyncio.TimerHandle | None = field(default=None, repr=False)
    retry: asyncio.TimerHandle | None = field(default=None, repr=False)


ProbeFunction = Callable[[ProbePlan], Awaitable[ProbeResult]]


class MonitorRuntime:
    def __init__(
        self,
        reporter: Reporter,
        resolver: MaterialResolver,
        metrics: Metrics,
        settings: RuntimeSettings | None = None,
        *,
        probe: ProbeFunction | None = None,
        policy: PolicyBook | None = None,
        namespace_limits: LimitsSource | None = None,
    ) -> None:
        self.settings = settings or RuntimeSettings()
        # Asked by each probe before it connects; None: every address (CLI, standalone default).
        self.policy = policy
        if namespace_limits is None and policy is not None:
            namespace_limits = policy.limits
        self._limits = namespace_limits or no_limits
        self._roster = NamespaceRoster()
        self.reporter = reporter
        self.resolver = resolver
        self.metrics = metrics
        self._probe_fn = probe or partial(run_probe, retries_dropped=metrics.retries_dropped.inc)
        self._loop = asyncio.get_running_loop()
        self._monitors: dict[Key, _Monitor] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.scheduler = Scheduler(
            self._probe,
            max_concurrency=self.settings.max_concurrency,
            max_concurrency_per_group=self.settings.max_concurrency_per_namespace,
            group_of=_namespace,
            cap_of_group=self._probe_cap,
            on_lag=metrics.schedule_lag.observe,
            on_error=self._scheduler_error,
            on_skip=self._skipped,
        )
        if policy is not None:
            # A policy or namespace-label change may move a namespace's limits.
            policy.on_change(self.reapply_limits)

    def __len__(self) -> int:
        return len(self._monitors)

    def health(self) -> tuple[bool, str]:
        """Liveness: false when the scheduler's timer stopped firing (probing has stopped)."""
        overdue = self.scheduler.overdue()
        if overdue > self.settings.stall_limit:
            return False, f"the scheduler is {overdue:.0f}s behind its earliest slot"
        return True, f"ok: {len(self)} monitors"

    def state_of(self, key: Key) -> MonitorState | None:
        m = self._monitors.get(key)
        return m.record.state if m else None

    async def apply(self, monitor: TcpMonitor) -> None:
        """Make the runtime probe ``monitor`` as specified (add, change, pause, fix)."""
        meta = monitor.metadata
        ref = MonitorRef(meta.namespace, meta.name, meta.uid)
        m = self._monitors.get(ref.key)
        if m is not None and m.ref.uid != ref.uid and ref.uid is not None and m.ref.uid:
            self._forget(ref.key)  # deleted and re-created under the same name: same rank
            m = None
        if m is not None and m.spec == monitor.spec and m.generation == meta.generation:
            # Our own status write, or a metadata-only change: only a probe request, or a
            # changed maintenance annotation (probed at once to show it), acts.
            if self._note_request(m, meta.annotations) | self._note_maintenance(m, meta):
                self._probe_now(m)
            return
        status = monitor.status
        resumed = False
        if m is None:
            record = MonitorRecord.from_status(status)
            m = _Monitor(
                ref,
                monitor.spec,
                meta.generation,
                record,
                condition_marks(status.conditions) if status else (),
            )
            self._monitors[ref.key] = m
            self._admit_new(m)
            # An operator restart: the status already describes this generation, so carry on
            # from it on the normal schedule instead of probing everything at once.
            resumed = (
                status is not None
                and status.observed_generation == meta.generation
                and record.last_probe_time is not None
            )
        else:
            m.spec, m.generation = monitor.spec, meta.generation
            m.fault, m.fault_type = None, None  # a new spec gets a fresh chance (and Event)
        m.version += 1
        requested = self._note_request(m, meta.annotations)
        self._note_maintenance(m, meta)
        if m.refused is None:  # a refused monitor costs nothing, not even a Secret read
            await self._compile(m)
        if self._monitors.get(ref.key) is m:
            try:
                self._activate(m, immediate=not resumed, spec_changed=not resumed)
                # A new monitor or spec is probed at once anyway: that probe handles it.
                if requested and (resumed or ref.key not in self.scheduler):
                    self._probe_now(m)
            except Exception as exc:  # reported on this monitor; the caller goes on
                self._fault(m, exc)

    def _note_request(self, m: _Monitor, annotations: dict[str, str]) -> bool:
        """Whether ``annotations`` carry a probe request not yet handled (a new value)."""
        value = annotations.get(PROBE_REQUEST_ANNOTATION)
        if value is None:
            return False
        # Compared and kept bounded: an annotation may be 256 KiB, a status field may not.
        seen = value if len(value) <= _SEEN_BOUND else f"{value[:_SEEN_BOUND]}/{len(value)}"
        if seen == m.request_seen:
            return False
        m.request_seen = seen
        problem = probe_request_problem(value)
        if problem is not None:
            log.warning(
                "%s/%s: annotation %s ignored: it %s",
                *m.ref.key,
                PROBE_REQUEST_ANNOTATION,
                problem,
            )
            return False
        if value == m.record.handled_request:
            return False  # handled before a restart (or a hand-over): status says so already
        m.requested = value
        return True

    def _note_maintenance(self, m: _Monitor, meta: ObjectMeta) -> bool:
        """Whether the maintenance annotation changed."""
        until = parse_maintenance_annotation(meta.annotations.get(MAINTENANCE_ANNOTATION))
        if until == m.maintenance_annotation:
            return False
        m.maintenance_annotation = until
        return True

    def _window_closing(self, m: _Monitor, until: datetime | None) -> None:
        """Probe at once when the window open now closes: its real state shows then."""
        if m.window_closes is not None:
            m.window_closes.cancel()
            m.window_closes = None
        if until is None:
            return
        delay = (until - datetime.now(UTC)).total_seconds() + 0.01
        m.window_closes = self._loop.call_later(
            max(0.0, delay), lambda: self.scheduler.probe_now(m.ref.key)
        )

    def _probe_now(self, m: _Monitor) -> None:
        """Probe at once for a request; a monitor that is not probed (paused, refused, an
        unusable spec) handles it at once, its status saying why there is no new result."""
        probed = m.refused is None and m.problem is None and not m.spec.paused
        if probed and self.scheduler.probe_now(m.ref.key):
            return
        self._handle_request(m)
        self._write(m, urgent=True)

    def _handle_request(self, m: _Monitor) -> bool:
        if m.requested is None:
            return False
        m.record = replace(m.record, handled_request=m.requested)
        m.requested = None
        return True

    def remove(self, key: Key) -> None:
        """Forget a deleted monitor: stop probing at once and drop its metrics. A monitor its
        namespace's ``max_monitors`` kept out takes the freed place."""
        self._forget(key)
        namespace, name = key
        rank = self._roster.remove(namespace, name)
        limit = self._limits(namespace).max_monitors
        if rank is not None and limit is not None and rank < limit:
            moved_in = self._roster.at(namespace, limit - 1)
            m = self._monitors.get((namespace, moved_in)) if moved_in is not None else None
            if m is not None and m.refused is not None:
                self._readmit(m)

    def reapply_limits(self) -> None:
        """The namespaces' limits changed: monitors now beyond a ``max_monitors`` stop, those
        now within it start, an interval now below or above a ``min_interval`` is refused or
        probed again, and raised concurrency caps hand out their slots. The other monitors
        keep their schedules. O(monitors), no I/O on the way (the ones that start again
        re-read their references in the background)."""
        for namespace in self._roster.namespaces():
            limits = self._limits(namespace)
            for rank in range(self._roster.count(namespace)):
                name = self._roster.at(namespace, rank)
                m = self._monitors.get((namespace, name)) if name is not None else None
                if m is None:
                    continue
                refusal = self._count_refusal(namespace, rank)
                if refusal is not None:
                    if refusal != m.refused:
                        self._refuse(m, refusal)
                elif m.refused is not None:
                    self._readmit(m)
                elif m.floor != limits.min_interval and self._floor_matters(
                    m, m.floor, limits.min_interval
                ):
                    self._spawn(self._recheck(m))
                else:
                    m.floor = limits.min_interval
        self.scheduler.caps_changed()

    def _forget(self, key: Key) -> None:
        m = self._monitors.pop(key, None)
        self.scheduler.unschedule(key)
        if m is None:
            return
        if m.retry is not None:
            m.retry.cancel()
        if m.window_closes is not None:
            m.window_closes.cancel()
        self.metrics.forget(key)
        self.reporter.forget(m.ref)
        self.metrics.monitors_scheduled.set(len(self.scheduler))

    async def close(self) -> None:
        for m in self._monitors.values():
            if m.retry is not None:
                m.retry.cancel()
            if m.window_closes is not None:
                m.window_closes.cancel()
        await self.scheduler.close()
        for task in list(self._background):
            task.cancel()

    def _probe_cap(self, group: object) -> int | None:
        return self._limits(str(group)).max_concurrent_probes

    def _count_refusal(self, namespace: str, rank: int) -> SpecProblem | None:
        limit = self._limits(namespace).max_monitors
        if limit is None or rank < limit:
            return None
        return namespace_limit_problem(namespace, limit)

    def _admit_new(self, m: _Monitor) -> None:
        """Give a new monitor its place in name order: beyond the limit it is refused; within
        it, the monitor it pushes beyond the limit is."""
        namespace, name = m.ref.key
        rank = self._roster.add(namespace, name)
        refusal = self._count_refusal(namespace, rank)
        if refusal is not None:
            m.refused = refusal
            self._event(m, invalid_spec_event(refusal))
            return
        limit = self._limits(namespace).max_monitors
        if limit is not None:
            pushed = self._roster.at(namespace, limit)
            other = self._monitors.get((namespace, pushed)) if pushed is not None else None
            if other is not None and other.refused is None:
                self._refuse(other, namespace_limit_problem(namespace, limit))

    def _refuse(self, m: _Monitor, refusal: SpecProblem) -> None:
        """Stop probing ``m``: its namespace has too many monitors. One Event per refusal."""
        m.refused = refusal
        self._event(m, invalid_spec_event(refusal))
        self._activate(m, immediate=False, spec_changed=False)

    def _readmit(self, m: _Monitor) -> None:
        """Within the limit again: check the spec (it was not, while refused) and probe."""
        m.refused = None
        self._spawn(self._recheck(m))

    async def _recheck(self, m: _Monitor) -> None:
        await self._compile(m)
        if self._monitors.get(m.ref.key) is m:
            try:
                self._activate(m, immediate=True, spec_changed=False)
            except Exception as exc:
                self._fault(m, exc)

    def _floor_matters(self, m: _Monitor, old: float | None, new: float | None) -> bool:
        """Whether a changed policy minimum changes what the spec check says of ``m``."""
        namespace = m.ref.namespace
        minimum = self.settings.min_interval
        before = bounds_problem(m.spec, minimum, _floor(namespace, old))
        return before != bounds_problem(m.spec, minimum, _floor(namespace, new))

    async def _compile(self, m: _Monitor) -> None:
        version = m.version
        floor = self._limits(m.ref.namespace).min_interval
        plan, problem = await check_spec(
            m.spec,
            self.settings.min_interval,
            lambda: self.resolver.resolve(m.spec, m.ref.namespace),
            _floor(m.ref.namespace, floor),
        )
        if m.version != version:
            return  # a newer spec arrived while we were reading
        m.floor = floor
        m.resolved_at = self._loop.time()
        previous, m.problem, m.plan = m.problem, problem, plan
        if problem is not None and problem != previous:
            if problem.reason == Reason.REFERENCE_UNREADABLE:
                log.warning("reading references of %s/%s failed: %s", *m.ref.key, problem.logged)
            self._event(m, invalid_spec_event(problem))

    def _activate(self, m: _Monitor, *, immediate: bool, spec_changed: bool) -> None:
        key = m.ref.key
        if m.retry is not None:
            m.retry.cancel()
            m.retry = None
        if m.refused is not None:
            self.scheduler.unschedule(key)  # until the limit lets it in: no retry
            self._write(m, urgent=True)
        elif m.problem is not None:
            self.scheduler.unschedule(key)
            m.retry = self._loop.call_later(self.settings.problem_retry, self._retry, key, m)
            self._write(m, urgent=True)
        elif m.spec.paused:
            self.scheduler.unschedule(key)
            m.record, _ = pause(m.record, datetime.now(UTC))
            self.metrics.set_state(key, m.record.state)
            self._write(m, urgent=True)
        else:
            try:
                self.scheduler.schedule(key, m.spec.interval_seconds, immediate=immediate)
            except ValueError as exc:  # bounds_problem lets nothing through that gets here
                m.problem = SpecProblem(INTERVAL_TOO_SHORT, str(exc))
                self._event(m, invalid_spec_event(m.problem))
                self._activate(m, immediate=False, spec_changed=False)
                return
            if spec_changed or _ready_status(m.conditions) != "True":
                self._write(m, urgent=True)
                m.fresh = True
        self.metrics.monitors_scheduled.set(len(self.scheduler))

    def _retry(self, key: Key, m: _Monitor) -> None:
        m.retry = None

        async def again() -> None:
            if self._monitors.get(key) is not m:
                return
            had = m.problem
            await self._compile(m)
            if self._monitors.get(key) is m and (m.problem is None or m.problem != had):
                self._activate(m, immediate=True, spec_changed=False)
            elif self._monitors.get(key) is m:
                m.retry = self._loop.call_later(self.settings.problem_retry, self._retry, key, m)

        self._spawn(again())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _probe(self, key: Key) -> None:
        m = self._monitors.get(key)
        if m is None or m.plan is None:
            return
        try:
            await self._probe_and_fold(key, m)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # this monitor's bug is reported on it; the others go on
            self._fault(m, exc)

    async def _probe_and_fold(self, key: Key, m: _Monitor) -> None:
        if (
            has_references(m.spec)
            and self._loop.time() - m.resolved_at > self.settings.reference_refresh
        ):
            await self._compile(m)
            if m.problem is not None:
                self._activate(m, immediate=False, spec_changed=False)
                return
        plan, version = m.plan, m.version
        if plan is None:
            return
        # Re-tries must end by the next slot, which after an immediate probe may come sooner
        # than a whole interval.
        next_slot = self.scheduler.until_next_slot(key)
        if next_slot is not None and (plan.budget is None or next_slot < plan.budget):
            plan = replace(plan, budget=next_slot)
        if self.policy is not None:
            plan = replace(plan, guard=self.policy.guard(m.ref.namespace))
        self.metrics.probes_in_flight.inc()
        try:
            result = await self._probe_fn(plan)
        finally:
            self.metrics.probes_in_flight.dec()
        if self._monitors.get(key) is not m or m.version != version:
            return  # deleted or changed while probing: the result describes nothing current
        if m.fault is not None:
            m.fault, m.fault_type, m.fresh = None, None, True  # recovered: say so now
        self._fold(m, result)

    def _fault(self, m: _Monitor, exc: Exception) -> None:
        """Ready=False ProbeError on this monitor, a Warning Event once per error type."""
        log.error("probing %s/%s failed: %s", *m.ref.key, exc, exc_info=exc)
        self.metrics.probe_errors.labels(type(exc).__name__).inc()
        problem = probe_error(exc)
        new_kind = m.fault_type != type(exc).__name__
        m.fault, m.fault_type = problem, type(exc).__name__
        if self._monitors.get(m.ref.key) is not m:
            return
        try:
            if new_kind:
                self._event(m, probe_error_event(problem))
                self._write(m, urgent=True)
        except Exception:
            log.exception("reporting the failure of %s/%s failed", *m.ref.key)

    def _scheduler_error(self, key: Key, exc: BaseException) -> None:
        m = self._monitors.get(key)
        if m is None or not isinstance(exc, Exception):
            return
        self._fault(m, exc)
        if key not in self.scheduler and m.retry is None:
            # The scheduler dropped it: try again later, like a spec that could not be used.
            m.retry = self._loop.call_later(self.settings.problem_retry, self._retry, key, m)

    def _skipped(self, key: Key, reason: str) -> None:
        self.metrics.skipped(key, reason)
        m = self._monitors.get(key)
        if m is None or reason != SKIP_CONCURRENCY:
            return  # overlap is the monitor's own doing (retries x timeout > interval): counted
        m.record = skip(m.record)
        if m.record.skipped_probes == 1:
            self._event(m, skipped_event(m.record))
            self._write(m, urgent=True)
        elif self._loop.time() - m.last_write >= self.settings.heartbeat:
            self._write(m, urgent=False)

    def _fold(self, m: _Monitor, result: ProbeResult) -> None:
        previous = m.record.kept_result
        now = datetime.now(UTC)
        until = maintenance_until(m.spec.maintenance, m.maintenance_annotation, now)
        if until != m.record.maintenance_until:
            self._window_closing(m, until)
        m.record, transition = advance(
            m.record,
            result,
            failure_threshold=m.spec.failure_threshold,
            success_threshold=m.spec.success_threshold,
            now=now,
            maintenance_until=until,
        )
        self.metrics.observe(m.ref.key, result, m.record.shown_state)
        if transition is not None:
            event = transition_event(transition, result)
            if event is not None:
                self._event(m, event)
        if newly_expiring(previous, result):
            self._event(m, expiring_event(result))
        handled = self._handle_request(m)
        heartbeat_due = self._loop.time() - m.last_write >= self.settings.heartbeat
        if transition is not None or m.fresh or handled or heartbeat_due:
            self._write(m, urgent=transition is not None or m.fresh or handled)
            m.fresh = False

    def _write(self, m: _Monitor, *, urgent: bool) -> None:
        problem = m.refused or m.problem or m.fault
        status = build_status(m.record, problem, m.generation, m.conditions, datetime.now(UTC))
        m.conditions = condition_marks(status.conditions)
        m.last_write = self._loop.time()
        self.reporter.write_status(m.ref, StatusReport(m.record, problem, status), urgent=urgent)

    def _event(self, m: _Monitor, event: EventSpec) -> None:
        # Counted by the reporter: only it knows whether the Event was posted, or (a runner)
        # left to the controller.
        self.reporter.post_event(m.ref, event)


def _namespace(key: Key) -> str:
    return key[0]


def _floor(namespace: str, seconds: float | None) -> PolicyFloor | None:
    return None if seconds is None else PolicyFloor(namespace, seconds)


def _ready_status(conditions: tuple[ConditionMark, ...]) -> str | None:
    return next((c.status for c in conditions if c.type == ConditionType.READY), None)
