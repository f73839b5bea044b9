"""A set of monitors being probed: desired specs in, statuses, Events and metrics out.

Shared by the operator (specs from a watch, reports to the API server), the standalone mode
(specs from files, reports to the log) and runners. It owns the per-monitor bookkeeping:
compiling specs, resolving references, feeding the scheduler, folding results into the state
machine, and deciding when a status write is worth its cost (transitions, spec changes, a
heartbeat) so that ten thousand healthy monitors do not flood the API server.
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
    Condition,
    ConditionType,
    MonitorState,
    ProbeResult,
    Reason,
    TcpMonitor,
    TcpMonitorSpec,
    TcpMonitorStatus,
)
from ..api.spec import MIN_INTERVAL_SECONDS
from ..probe import ProbeMaterial, ProbePlan, run_probe
from ..probe.material import has_references
from ..reporting import (
    INTERVAL_TOO_SHORT,
    EventSpec,
    SpecProblem,
    build_status,
    check_spec,
    expiring_event,
    invalid_spec_event,
    probe_error,
    probe_error_event,
    skipped_event,
    transition_event,
)
from ..reporting.record import MonitorRecord, advance, newly_expiring, pause, skip
from ..telemetry.metrics import Metrics
from .scheduler import SKIP_CONCURRENCY, Scheduler

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass(frozen=True)
class MonitorRef:
    """Which object a report is about; ``uid`` lets Events point at the exact object."""

    namespace: str
    name: str
    uid: str | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


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


@dataclass
class _Monitor:
    ref: MonitorRef
    spec: TcpMonitorSpec
    generation: int | None
    record: MonitorRecord
    conditions: list[Condition]
    plan: ProbePlan | None = None
    problem: SpecProblem | None = None
    fault: SpecProblem | None = None  # an unexpected exception while probing (ProbeError)
    fault_type: str | None = None  # its exception type: one Event per type, not per probe
    version: int = 0
    last_write: float = -math.inf
    resolved_at: float = -math.inf
    fresh: bool = False
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
    ) -> None:
        self.settings = settings or RuntimeSettings()
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
            on_lag=metrics.schedule_lag.observe,
            on_error=self._scheduler_error,
            on_skip=self._skipped,
        )

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
            self.remove(ref.key)  # deleted and re-created under the same name
            m = None
        if m is not None and m.spec == monitor.spec and m.generation == meta.generation:
            return  # our own status write, or a metadata-only change
        status = monitor.status
        resumed = False
        if m is None:
            record = MonitorRecord.from_status(status)
            m = _Monitor(
                ref,
                monitor.spec,
                meta.generation,
                record,
                list(status.conditions) if status else [],
            )
            self._monitors[ref.key] = m
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
        await self._compile(m)
        if self._monitors.get(ref.key) is m:
            try:
                self._activate(m, immediate=not resumed, spec_changed=not resumed)
            except Exception as exc:  # reported on this monitor; the caller goes on
                self._fault(m, exc)

    def remove(self, key: Key) -> None:
        """Forget a deleted monitor: stop probing at once and drop its metrics."""
        m = self._monitors.pop(key, None)
        self.scheduler.unschedule(key)
        if m is None:
            return
        if m.retry is not None:
            m.retry.cancel()
        self.metrics.forget(key)
        self.reporter.forget(m.ref)
        self.metrics.monitors_scheduled.set(len(self.scheduler))

    async def close(self) -> None:
        for m in self._monitors.values():
            if m.retry is not None:
                m.retry.cancel()
        await self.scheduler.close()
        for task in list(self._background):
            task.cancel()

    async def _compile(self, m: _Monitor) -> None:
        version = m.version
        plan, problem = await check_spec(
            m.spec,
            self.settings.min_interval,
            lambda: self.resolver.resolve(m.spec, m.ref.namespace),
        )
        if m.version != version:
            return  # a newer spec arrived while we were reading
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
        if m.problem is not None:
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
        previous = m.record.last_result
        m.record, transition = advance(
            m.record,
            result,
            failure_threshold=m.spec.failure_threshold,
            success_threshold=m.spec.success_threshold,
            now=datetime.now(UTC),
        )
        self.metrics.observe(m.ref.key, result, m.record.state)
        if transition is not None:
            event = transition_event(transition, result)
            if event is not None:
                self._event(m, event)
        if newly_expiring(previous, result):
            self._event(m, expiring_event(result))
        heartbeat_due = self._loop.time() - m.last_write >= self.settings.heartbeat
        if transition is not None or m.fresh or heartbeat_due:
            self._write(m, urgent=transition is not None or m.fresh)
            m.fresh = False

    def _write(self, m: _Monitor, *, urgent: bool) -> None:
        problem = m.problem or m.fault
        status = build_status(m.record, problem, m.generation, m.conditions, datetime.now(UTC))
        m.conditions = status.conditions
        m.last_write = self._loop.time()
        self.reporter.write_status(m.ref, StatusReport(m.record, problem, status), urgent=urgent)

    def _event(self, m: _Monitor, event: EventSpec) -> None:
        # Counted by the reporter: only it knows whether the Event was posted, or (a runner)
        # left to the controller.
        self.reporter.post_event(m.ref, event)


def _namespace(key: Key) -> str:
    return key[0]


def _ready_status(conditions: list[Condition]) -> str | None:
    return next((c.status for c in conditions if c.type == ConditionType.READY), None)
