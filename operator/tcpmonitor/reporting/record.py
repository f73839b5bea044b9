"""A monitor's state over time: thresholds, counters, transitions. Pure, no I/O.

Separated from both the scheduler and Kubernetes so that the rules users care about ("three
failures before Down") are unit-tested directly and shared by operator, runners and standalone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ..api import MonitorState, ProbeResult, TcpMonitorStatus, Verdict, WarningCode
from ..api.status import MAX_RECENT_TRANSITIONS
from .kept_result import KeptResult, keep, restore, warning_codes

_SUCCESS = (MonitorState.UP, MonitorState.DEGRADED)


@dataclass(frozen=True, slots=True)
class MonitorRecord:
    """What survives between probes (and, through ``status``, operator restarts)."""

    state: MonitorState = MonitorState.UNKNOWN
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    # The last result, compact (``kept_result``): ten thousand monitors keep one each.
    kept_result: KeptResult | None = None
    last_probe_time: datetime | None = None
    last_transition_time: datetime | None = None
    last_success_time: datetime | None = None
    last_failure_time: datetime | None = None
    skipped_probes: int = 0  # dropped for want of a probe slot since the last result
    # The latest changes (state entered, when), oldest first, bounded: a runner's entry
    # carries them so that the controller can replay those it did not see.
    recent: tuple[tuple[MonitorState, datetime], ...] = ()
    # The last probe request (annotation value) a probe was run for: status.lastHandled...
    handled_request: str | None = None
    # In a maintenance window: until when, and the state shown before it opened (the one the
    # first result after it is compared with for an Event). ``state`` goes on following the
    # results (thresholds applied) meanwhile; ``shown_state`` is what status and metrics say.
    maintenance_until: datetime | None = None
    before_maintenance: MonitorState | None = None

    @property
    def last_result(self) -> ProbeResult | None:
        """The last result, rebuilt: a new model on each call (read once per status write)."""
        return restore(self.kept_result) if self.kept_result is not None else None

    @property
    def shown_state(self) -> MonitorState:
        return MonitorState.MAINTENANCE if self.maintenance_until is not None else self.state

    @classmethod
    def from_status(cls, status: TcpMonitorStatus | None) -> MonitorRecord:
        """Resume from what a previous operator wrote, so counters and times survive."""
        if status is None or status.state is None:
            return cls(handled_request=status.last_handled_probe_request if status else None)
        # The state under a maintenance window is not stored: the first result is taken as it
        # is, and the state before the window is not known (Unknown) when it closes.
        state = MonitorState.UNKNOWN if status.state is MonitorState.MAINTENANCE else status.state
        return cls(
            state=state,
            consecutive_successes=status.consecutive_successes,
            consecutive_failures=status.consecutive_failures,
            kept_result=keep(status.last_result) if status.last_result else None,
            last_probe_time=status.last_probe_time,
            last_transition_time=status.last_transition_time,
            last_success_time=status.last_success_time,
            last_failure_time=status.last_failure_time,
            skipped_probes=status.skipped_probes,
            handled_request=status.last_handled_probe_request,
        )


@dataclass(frozen=True)
class Transition:
    """A change of state, the reason for a status write and an Event."""

    previous: MonitorState
    current: MonitorState
    at: datetime


def advance(
    record: MonitorRecord,
    result: ProbeResult,
    *,
    failure_threshold: int,
    success_threshold: int,
    now: datetime,
    maintenance_until: datetime | None = None,
) -> tuple[MonitorRecord, Transition | None]:
    """Fold one probe result into the record.

    The first result after Unknown or Paused is taken as it is (users want to see something
    at once); between known states a change needs ``failureThreshold`` consecutive failures or
    ``successThreshold`` consecutive successes; Up and Degraded switch at once, both being
    successes.

    ``maintenance_until`` (a window is open until then) shows the state as Maintenance: the
    transition returned is the shown one, into Maintenance (no Event) or out of it, where its
    ``previous`` is the state shown before the window, so that the Event after it says what
    changed across it (none when nothing did).
    """
    success = result.state is not Verdict.DOWN
    successes = record.consecutive_successes + 1 if success else 0
    failures = 0 if success else record.consecutive_failures + 1
    verdict = MonitorState(result.state.value)
    current = record.state
    if current in (MonitorState.UNKNOWN, MonitorState.PAUSED) or (success and current in _SUCCESS):
        new_state = verdict
    elif success:
        new_state = verdict if successes >= success_threshold else current
    else:
        new_state = verdict if failures >= failure_threshold else current
    transition = Transition(current, new_state, now) if new_state != current else None
    shown_transition, before = _shown_transition(record, new_state, maintenance_until, now)
    updated = replace(
        record,
        state=new_state,
        consecutive_successes=successes,
        consecutive_failures=failures,
        kept_result=keep(result),
        last_probe_time=result.started_at,
        last_transition_time=now if transition or shown_transition else record.last_transition_time,
        last_success_time=result.started_at if success else record.last_success_time,
        last_failure_time=result.started_at if not success else record.last_failure_time,
        skipped_probes=0,
        recent=_remember(record.recent, new_state, now) if transition else record.recent,
        maintenance_until=maintenance_until,
        before_maintenance=before,
    )
    if record.maintenance_until is None and maintenance_until is None:
        return updated, transition
    return updated, shown_transition


def _shown_transition(
    record: MonitorRecord,
    new_state: MonitorState,
    maintenance_until: datetime | None,
    now: datetime,
) -> tuple[Transition | None, MonitorState | None]:
    """The change of the shown state around a maintenance window, and the state shown before
    the window (kept while it is open)."""
    if maintenance_until is not None:
        if record.maintenance_until is not None:
            return None, record.before_maintenance  # still in it: nothing shown changes
        return Transition(record.state, MonitorState.MAINTENANCE, now), record.state
    if record.maintenance_until is not None:  # the window closed: compare with before it
        before = record.before_maintenance or MonitorState.UNKNOWN
        return Transition(before, new_state, now), None
    return None, None


def skip(record: MonitorRecord) -> MonitorRecord:
    """A probe was dropped for want of a slot: the last result is getting stale."""
    return replace(record, skipped_probes=record.skipped_probes + 1)


def pause(record: MonitorRecord, now: datetime) -> tuple[MonitorRecord, Transition | None]:
    if record.state is MonitorState.PAUSED and record.maintenance_until is None:
        return record, None
    transition = Transition(record.shown_state, MonitorState.PAUSED, now)
    recent = _remember(record.recent, MonitorState.PAUSED, now)
    paused = replace(
        record,
        state=MonitorState.PAUSED,
        last_transition_time=now,
        recent=recent,
        maintenance_until=None,
        before_maintenance=None,
    )
    return paused, transition


def _remember(
    recent: tuple[tuple[MonitorState, datetime], ...], state: MonitorState, at: datetime
) -> tuple[tuple[MonitorState, datetime], ...]:
    return (*recent, (state, at))[-MAX_RECENT_TRANSITIONS:]


_EXPIRING = (
    WarningCode.TLS_CERTIFICATE_EXPIRING.value,
    WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRING.value,
)


def newly_expiring(previous: KeptResult | None, current: ProbeResult) -> bool:
    """Whether an expiry warning, the leaf's or the chain's, just appeared (an Event once, not
    every probe). ``previous`` is the record's kept result: read on every probe, not rebuilt."""
    now, before = {w.code for w in current.warnings}, warning_codes(previous)
    return any(code in now and code not in before for code in _EXPIRING)
