"""The conditions every mode writes, built in one place. Pure.

Conditions follow the Kubernetes API conventions. ``Ready`` means "the spec is valid and the
monitor is being probed", not "the target is up": GitOps tools wait for Ready, and a down
target must not stall a deployment; ``Reachable`` carries the target's health.
"""

from __future__ import annotations

from datetime import datetime

from ..api import Condition, MonitorState
from ..api.result import MAX_MESSAGE
from .messages import describe_result, describe_skipped
from .problems import SpecProblem
from .record import MonitorRecord


def make_condition(
    previous: list[Condition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> Condition:
    old = next((c for c in previous if c.type == type_), None)
    changed = old is None or old.status != status
    return Condition(
        type=type_,
        status=status,
        observed_generation=generation,
        last_transition_time=now if changed or old is None else old.last_transition_time,
        reason=reason,
        message=message[:MAX_MESSAGE],
    )


def conditions(
    record: MonitorRecord,
    problem: SpecProblem | None,
    generation: int | None,
    previous: list[Condition],
    now: datetime,
) -> list[Condition]:
    state = record.state
    if problem is not None:
        ready = ("False", problem.reason, problem.message)
    elif state is MonitorState.PAUSED:
        ready = ("True", "Paused", "probing is paused (spec.paused)")
    else:
        ready = ("True", "Probing", "the spec is valid and the target is being probed")
    detail = describe_result(record.last_result)
    if record.skipped_probes and state is not MonitorState.PAUSED:
        reachable = ("Unknown", "ProbesSkipped", f"{describe_skipped(record)}; last: {detail}")
    elif state in (MonitorState.UP, MonitorState.DEGRADED):
        reachable = ("True", "TargetReachable", detail)
    elif state is MonitorState.DOWN:
        code = (
            record.last_result.error.code
            if record.last_result and record.last_result.error
            else None
        )
        reachable = ("False", _camel(code) if code else "TargetDown", detail)
    else:
        reachable = ("Unknown", "Paused" if state is MonitorState.PAUSED else "NoResult", detail)
    if state is MonitorState.DEGRADED:
        degraded = ("True", "TargetDegraded", detail)
    elif state in (MonitorState.UP, MonitorState.DOWN):
        degraded = ("False", "NotDegraded", "")
    else:
        degraded = ("Unknown", "NoResult", "")
    return [
        make_condition(previous, "Ready", *ready, generation, now),
        make_condition(previous, "Reachable", *reachable, generation, now),
        make_condition(previous, "Degraded", *degraded, generation, now),
    ]


def _camel(code: str) -> str:
    """CONNECTION_REFUSED -> ConnectionRefused: condition reasons are CamelCase."""
    return "".join(part.capitalize() for part in code.split("_"))
