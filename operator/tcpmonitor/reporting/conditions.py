"""The conditions every mode writes, built in one place. Pure.

Conditions follow the Kubernetes API conventions. ``Ready`` means "the spec is valid and the
monitor is being probed", not "the target is up": GitOps tools wait for Ready, and a down
target must not stall a deployment; ``Reachable`` carries the target's health.

The all-in-one runtime (and each runner) builds them from its record (``conditions``); the
controller of a runner deployment from the quorum verdict over the locations
(``aggregated_conditions``). Both go through ``verdict_conditions``, so a state gets the same
type, status and reason in every mode; only the controller adds ``LocationsAvailable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ..api import Condition, ConditionType, ErrorCode, MonitorState, Reason
from ..api.result import MAX_MESSAGE
from .messages import describe_result, describe_skipped
from .problems import SpecProblem
from .quorum import QuorumVerdict
from .record import MonitorRecord

_Parts = tuple[str, str, str]  # status, reason, message


@dataclass(frozen=True)
class Observation:
    """What the conditions are built from, whichever mode observed it."""

    state: MonitorState
    detail: str  # one line on the deciding result(s)
    error_code: str | None = None  # the deciding error code, when Down
    skipped: str | None = None  # why the result is stale (probes dropped), or None
    maintenance_until: datetime | None = None  # in a maintenance window until then


class PreviousCondition(Protocol):
    """What the next conditions need of the previous ones: a ``Condition`` or its mark."""

    @property
    def type(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def last_transition_time(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class ConditionMark:
    """A written condition as far as the next ones need it: its status and since when.

    Kept per monitor between writes instead of the ``Condition`` models (a pydantic model
    with its messages is about a kilobyte; three of them per monitor were a third of a
    runner's memory at ten thousand monitors, see docs/scaling.md)."""

    type: str
    status: str
    last_transition_time: datetime


def condition_marks(conditions: Iterable[PreviousCondition]) -> tuple[ConditionMark, ...]:
    return tuple(ConditionMark(c.type, c.status, c.last_transition_time) for c in conditions)


def make_condition(
    previous: Sequence[PreviousCondition],
    type_: ConditionType,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> Condition:
    old = next((c for c in previous if c.type == type_), None)
    changed = old is None or old.status != status
    return Condition(
        type=type_.value,
        status=status,
        observed_generation=generation,
        last_transition_time=now if changed or old is None else old.last_transition_time,
        reason=str(reason),
        message=message[:MAX_MESSAGE],
    )


def ready_parts(problem: SpecProblem | None, seen: Observation) -> _Parts:
    if problem is not None:
        return "False", problem.reason, problem.message
    state = seen.state
    if state is MonitorState.DOWN and seen.error_code == ErrorCode.TARGET_FORBIDDEN:
        # Probing goes on (a policy change acts on the next probe), but what the spec asks
        # for is not allowed: that is the author's to fix, as with an invalid spec.
        return "False", Reason.TARGET_FORBIDDEN, f"the target is refused by policy: {seen.detail}"
    if state is MonitorState.PAUSED:
        return "True", Reason.PAUSED, "probing is paused (spec.paused)"
    if seen.maintenance_until is not None:
        until = seen.maintenance_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            "True",
            Reason.MAINTENANCE,
            f"in a maintenance window until {until}: probing goes on, no Events are posted",
        )
    return "True", Reason.PROBING, "the spec is valid and the target is being probed"


def reachable_parts(seen: Observation) -> _Parts:
    state = seen.state
    if seen.skipped and state is not MonitorState.PAUSED:
        return "Unknown", Reason.PROBES_SKIPPED, f"{seen.skipped}; last: {seen.detail}"
    if state in (MonitorState.UP, MonitorState.DEGRADED):
        return "True", Reason.TARGET_REACHABLE, seen.detail
    if state is MonitorState.DOWN:
        return "False", down_reason(seen.error_code), seen.detail
    if state is MonitorState.PAUSED:
        return "Unknown", Reason.PAUSED, seen.detail
    return "Unknown", Reason.NO_RESULT, seen.detail


def degraded_parts(seen: Observation) -> _Parts:
    if seen.state is MonitorState.DEGRADED:
        return "True", Reason.TARGET_DEGRADED, seen.detail
    if seen.state in (MonitorState.UP, MonitorState.DOWN):
        return "False", Reason.NOT_DEGRADED, ""
    if seen.state is MonitorState.PAUSED:
        return "Unknown", Reason.PAUSED, ""
    return "Unknown", Reason.NO_RESULT, ""


def down_reason(code: str | None) -> str:
    """Reachable=False's reason: the deciding error code in CamelCase, else TargetDown."""
    return _camel(code) if code else Reason.TARGET_DOWN.value


def verdict_conditions(
    seen: Observation,
    problem: SpecProblem | None,
    generation: int | None,
    previous: Sequence[PreviousCondition],
    now: datetime,
) -> list[Condition]:
    """Ready, Reachable and Degraded: the conditions of every mode."""
    return [
        make_condition(previous, ConditionType.READY, *ready_parts(problem, seen), generation, now),
        make_condition(previous, ConditionType.REACHABLE, *reachable_parts(seen), generation, now),
        make_condition(previous, ConditionType.DEGRADED, *degraded_parts(seen), generation, now),
    ]


def record_observation(record: MonitorRecord) -> Observation:
    result = record.last_result
    return Observation(
        state=record.state,
        detail=describe_result(result),
        error_code=result.error.code if result and result.error else None,
        skipped=describe_skipped(record) if record.skipped_probes else None,
        maintenance_until=record.maintenance_until,
    )


def conditions(
    record: MonitorRecord,
    problem: SpecProblem | None,
    generation: int | None,
    previous: Sequence[PreviousCondition],
    now: datetime,
) -> list[Condition]:
    """One process's view (all-in-one, a runner, standalone): from its record."""
    return verdict_conditions(record_observation(record), problem, generation, previous, now)


def aggregated_conditions(
    verdict: QuorumVerdict,
    state: MonitorState,
    detail: str,
    problem: SpecProblem | None,
    generation: int | None,
    previous: Sequence[PreviousCondition],
    now: datetime,
    maintenance_until: datetime | None = None,
) -> list[Condition]:
    """The controller's view: the quorum verdict (``state`` is Paused when the spec says so)
    described by ``detail`` (``verdict_detail``), plus ``LocationsAvailable``."""
    seen = Observation(state, detail, verdict.error_code, maintenance_until=maintenance_until)
    if verdict.unavailable:
        available: _Parts = (
            "False",
            Reason.NO_LIVE_RUNNER,
            f"no live runner in {', '.join(verdict.unavailable)}",
        )
    else:
        available = ("True", Reason.RUNNERS_AVAILABLE, "every location has a live runner")
    return [
        *verdict_conditions(seen, problem, generation, previous, now),
        make_condition(previous, ConditionType.LOCATIONS_AVAILABLE, *available, generation, now),
    ]


def _camel(code: str) -> str:
    """CONNECTION_REFUSED -> ConnectionRefused: condition reasons are CamelCase."""
    return "".join(part.capitalize() for part in code.split("_"))
