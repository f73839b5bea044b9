"""What to tell people: status, conditions and Events, computed from a record. Pure, no I/O.

Conditions follow the Kubernetes API conventions. ``Ready`` means "the spec is valid and the
monitor is being probed", not "the target is up": GitOps tools wait for Ready, and a down
target must not stall a deployment; ``Reachable`` carries the target's health.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .api import (
    Condition,
    DurationError,
    MonitorState,
    ProbeResult,
    TcpMonitorSpec,
    TcpMonitorStatus,
    format_duration,
)
from .api.result import MAX_MESSAGE
from .api.spec import MIN_TIMEOUT_SECONDS
from .tracking import MonitorRecord, Transition


@dataclass(frozen=True)
class SpecProblem:
    """Why a spec that the API server accepted cannot be probed (Ready=False)."""

    reason: str  # InvalidSpec, SecretNotFound, ...
    message: str


INTERVAL_TOO_SHORT = "IntervalTooShort"
TIMEOUT_TOO_SHORT = "TimeoutTooShort"


def bounds_problem(spec: TcpMonitorSpec, min_interval: float) -> SpecProblem | None:
    """Why the numbers of a spec must not be scheduled, or None.

    The schema refuses these already; this catches objects stored before the CRD had the bound
    (or written with a looser CRD) and a platform minimum raised above the schema's.
    """
    try:
        interval, timeout = spec.interval_seconds, spec.timeout_seconds
    except DurationError as exc:
        return SpecProblem("InvalidSpec", str(exc))
    if not interval >= min_interval:  # also NaN
        return SpecProblem(
            INTERVAL_TOO_SHORT,
            f"spec.interval: {spec.interval} is below the minimum of "
            f"{format_duration(min_interval)} set for this installation; not probed",
        )
    if not timeout >= MIN_TIMEOUT_SECONDS:
        return SpecProblem(
            TIMEOUT_TOO_SHORT,
            f"spec.timeout: {spec.timeout} is below the minimum of "
            f"{format_duration(MIN_TIMEOUT_SECONDS)}; not probed",
        )
    return None


@dataclass(frozen=True)
class EventSpec:
    """An Event to post: type, reason, message (the poster adds object and instance)."""

    type: str
    reason: str
    message: str


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def describe_result(result: ProbeResult | None) -> str:
    """One line with what went wrong (or how fast it went), for messages and Events."""
    if result is None:
        return "no probe result yet"
    t = result.timings
    timing = (
        f"dns {_ms(t.dns)}, connect {_ms(t.connect)}, tls {_ms(t.tls)}, data {_ms(t.data)}, "
        f"total {_ms(t.total)}"
    )
    address = result.remote_address or "no address"
    problem = result.error or (result.warnings[0] if result.warnings else None)
    if problem is not None:
        # Most messages already start with the address; say it once.
        where = "" if address in problem.message else f"{address}: "
        head = f"{problem.code} {where}{problem.message}"
    else:
        head = f"{address} {result.state.value}"
    return f"{head} ({timing})"[:MAX_MESSAGE]


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


def describe_skipped(record: MonitorRecord) -> str:
    return (
        f"{record.skipped_probes} probe(s) in a row skipped: no probe slot was free before the "
        "next was due (the prober is saturated)"
    )


def _camel(code: str) -> str:
    """CONNECTION_REFUSED -> ConnectionRefused: condition reasons are CamelCase."""
    return "".join(part.capitalize() for part in code.split("_"))


def build_status(
    record: MonitorRecord,
    problem: SpecProblem | None,
    generation: int | None,
    previous: list[Condition],
    now: datetime,
) -> TcpMonitorStatus:
    if problem is not None:
        message = f"{problem.reason}: {problem.message}"
    elif record.state is MonitorState.PAUSED:
        message = "paused"
    elif record.skipped_probes:
        message = f"{describe_skipped(record)}; last: {describe_result(record.last_result)}"
    else:
        message = describe_result(record.last_result)
    total = record.last_result.timings.total if record.last_result else None
    return TcpMonitorStatus(
        observed_generation=generation,
        state=record.state,
        message=message[:MAX_MESSAGE],
        latency=None if total is None else f"{total:.1f}ms",
        conditions=conditions(record, problem, generation, previous, now),
        last_result=record.last_result,
        last_probe_time=record.last_probe_time,
        last_transition_time=record.last_transition_time,
        last_success_time=record.last_success_time,
        last_failure_time=record.last_failure_time,
        consecutive_successes=record.consecutive_successes,
        consecutive_failures=record.consecutive_failures,
        skipped_probes=record.skipped_probes,
    )


def status_body(status: TcpMonitorStatus) -> dict[str, Any]:
    """The wire form of the top-level status fields, times as RFC 3339 strings.

    ``locations`` is left out: its entries belong to the runners (server-side apply, one field
    manager per location), and a merge patch carrying the list would replace all of them.
    """
    return status.model_dump(mode="json", by_alias=True, exclude={"locations"})


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


def probe_error(exc: BaseException) -> SpecProblem:
    """An unexpected exception while probing one monitor (a bug): Ready=False ProbeError."""
    return SpecProblem("ProbeError", f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE])


def probe_error_event(problem: SpecProblem) -> EventSpec:
    return EventSpec("Warning", "ProbeError", f"probing failed unexpectedly: {problem.message}")


def skipped_event(record: MonitorRecord) -> EventSpec:
    return EventSpec("Warning", "ProbesSkipped", describe_skipped(record))
