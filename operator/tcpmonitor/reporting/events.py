"""The Events every mode posts (or, standalone, prints), built in one place. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from ..api import MonitorState, ProbeResult
from .messages import describe_result, describe_skipped
from .problems import SpecProblem
from .record import MonitorRecord, Transition


@dataclass(frozen=True)
class EventSpec:
    """An Event to post: type, reason, message (the poster adds object and instance)."""

    type: str
    reason: str
    message: str


_EVENT_FOR = {
    MonitorState.UP: ("Normal", "TargetUp"),
    MonitorState.DOWN: ("Warning", "TargetDown"),
    MonitorState.DEGRADED: ("Warning", "TargetDegraded"),
}


def transition_event(transition: Transition, result: ProbeResult | None) -> EventSpec | None:
    kind = _EVENT_FOR.get(transition.current)
    if kind is None:
        return None
    message = (
        f"{transition.previous.value} -> {transition.current.value}: {describe_result(result)}"
    )
    return EventSpec(kind[0], kind[1], message)


def expiring_event(result: ProbeResult) -> EventSpec:
    cert = result.tls.certificate if result.tls else None
    detail = (
        f"certificate {cert.subject} expires {cert.not_after.isoformat()} "
        f"({cert.days_remaining:.1f} days)"
        if cert
        else "certificate expires soon"
    )
    return EventSpec("Warning", "CertificateExpiring", detail)


def invalid_spec_event(problem: SpecProblem) -> EventSpec:
    return EventSpec("Warning", "InvalidSpec", f"{problem.reason}: {problem.message}")


def probe_error_event(problem: SpecProblem) -> EventSpec:
    return EventSpec("Warning", "ProbeError", f"probing failed unexpectedly: {problem.message}")


def skipped_event(record: MonitorRecord) -> EventSpec:
    return EventSpec("Warning", "ProbesSkipped", describe_skipped(record))
