"""The Events every mode posts (or, standalone, prints), built in one place. Pure.

The all-in-one runtime posts state changes of its record (``transition_event``), the controller
of a runner deployment those of the quorum verdict (``state_event``, which the former uses).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..api import EventReason, MonitorState, ProbeResult, WarningCode
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
    MonitorState.UP: ("Normal", EventReason.TARGET_UP),
    MonitorState.DOWN: ("Warning", EventReason.TARGET_DOWN),
    MonitorState.DEGRADED: ("Warning", EventReason.TARGET_DEGRADED),
}


def state_event(previous: MonitorState, current: MonitorState, detail: str) -> EventSpec | None:
    """The Event for a change of state (none for Unknown and Paused)."""
    kind = _EVENT_FOR.get(current)
    if kind is None or previous is current:
        return None
    return EventSpec(kind[0], kind[1].value, f"{previous.value} -> {current.value}: {detail}")


def transition_event(transition: Transition, result: ProbeResult | None) -> EventSpec | None:
    return state_event(transition.previous, transition.current, describe_result(result))


def expiring_event(result: ProbeResult) -> EventSpec:
    tls = result.tls
    chain_warning = any(
        w.code == WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRING.value for w in result.warnings
    )
    if chain_warning and tls is not None and tls.chain_expiry is not None:
        # The chain expires first: name the intermediate, the leaf is not the problem.
        detail = (
            f"chain certificate {tls.chain_expiry_subject or '?'} expires "
            f"{tls.chain_expiry.isoformat()}"
        )
        return EventSpec("Warning", EventReason.CERTIFICATE_EXPIRING.value, detail)
    cert = tls.certificate if tls else None
    detail = (
        f"certificate {cert.subject} expires {cert.not_after.isoformat()} "
        f"({cert.days_remaining:.1f} days)"
        if cert
        else "certificate expires soon"
    )
    return EventSpec("Warning", EventReason.CERTIFICATE_EXPIRING.value, detail)


def invalid_spec_event(problem: SpecProblem) -> EventSpec:
    return EventSpec(
        "Warning", EventReason.INVALID_SPEC.value, f"{problem.reason}: {problem.message}"
    )


def invalid_object_event(message: str) -> EventSpec:
    """An object the operator could not even parse (the watch handlers' refusal)."""
    return EventSpec("Warning", EventReason.INVALID_SPEC.value, message)


def probe_error_event(problem: SpecProblem) -> EventSpec:
    return EventSpec(
        "Warning", EventReason.PROBE_ERROR.value, f"probing failed unexpectedly: {problem.message}"
    )


def skipped_event(record: MonitorRecord) -> EventSpec:
    return EventSpec("Warning", EventReason.PROBES_SKIPPED.value, describe_skipped(record))


def location_unavailable_event(locations: Iterable[str]) -> EventSpec:
    return EventSpec(
        "Warning",
        EventReason.LOCATION_UNAVAILABLE.value,
        f"no live runner in {', '.join(sorted(locations))}: not probed there",
    )
