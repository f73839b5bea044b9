"""What a location reports, and which location's result speaks for the monitor. Pure, no I/O.

A runner writes its location's entry from its record (the same record the operator's status is
built from); the controller copies the result that decided the verdict to ``lastResult``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..api import LocationStatus, MonitorState, ProbeResult
from ..api.printable import printable, printable_list
from ..api.result import MAX_DNS_NAME, MAX_MESSAGE, Problem
from ..api.status import LOCATION_DNS_NAMES, LOCATION_TEXT, StateChange
from .messages import describe_result
from .problems import SpecProblem
from .record import MonitorRecord

# Worse first: a Down location speaks for the monitor before a Degraded one, and so on.
_SEVERITY = {
    MonitorState.DOWN: 3,
    MonitorState.DEGRADED: 2,
    MonitorState.UP: 1,
}


def _cut(text: str | None) -> str | None:
    return None if text is None else printable(text, LOCATION_TEXT)


def _problem(problem: Problem) -> Problem:
    return problem.model_copy(update={"message": _cut(problem.message)})


def location_result(result: ProbeResult, location: str) -> ProbeResult:
    """``result`` as one location's entry carries it: named, and small enough to hold sixteen.

    Kept: everything a reader needs to see where and why (state, address, timings, codes, the
    request and response excerpts, which assertions passed, the TLS session, the certificate's
    dates and fingerprint, the chain's length and earliest expiry). Cut: messages and
    distinguished names to ``LOCATION_TEXT`` characters, the certificate's names to
    ``LOCATION_DNS_NAMES``; left out: each assertion's target (the spec has it) and observed
    value (the response excerpt shows it), and the chain's certificates.
    """
    tls = result.tls
    if tls is not None:
        cert = tls.certificate
        if cert is not None:
            cert = cert.model_copy(
                update={
                    "subject": _cut(cert.subject),
                    "issuer": _cut(cert.issuer),
                    "dns_names": printable_list(cert.dns_names, LOCATION_DNS_NAMES, MAX_DNS_NAME),
                }
            )
        revocation = tls.revocation
        if revocation is not None:
            revocation = revocation.model_copy(update={"message": _cut(revocation.message)})
        # The chain is left out (up to eight certificates, sixteen times over): the leaf is
        # above, and chainExpiry and its subject say when and where the chain fails first.
        tls = tls.model_copy(
            update={
                "verify_error": _cut(tls.verify_error),
                "chain_error": _cut(tls.chain_error),
                "hostname_error": _cut(tls.hostname_error),
                "certificate": cert,
                "chain": [],
                "chain_expiry_subject": _cut(tls.chain_expiry_subject),
                "revocation": revocation,
            }
        )
    return result.model_copy(
        update={
            "location": location,
            "error": _problem(result.error) if result.error else None,
            "warnings": [_problem(w) for w in result.warnings],
            "assertions": [
                a.model_copy(update={"target": None, "actual": None}) for a in result.assertions
            ],
            "tls": tls,
        }
    )


def location_entry(
    record: MonitorRecord, problem: SpecProblem | None, location: str, runner: str
) -> LocationStatus:
    """A runner's entry in ``status.locations``, straight from its record of the monitor."""
    result = record.last_result
    if result is not None:
        message: str | None = describe_result(result)
    elif problem is not None:
        message = f"{problem.reason}: {problem.message}"
    else:
        message = None
    return LocationStatus(
        name=location,
        state=record.state,
        runner=runner,
        last_probe_time=record.last_probe_time,
        last_transition_time=record.last_transition_time,
        consecutive_successes=record.consecutive_successes,
        consecutive_failures=record.consecutive_failures,
        error_code=result.error.code if result and result.error else None,
        total_ms=result.timings.total if result else None,
        message=message[:MAX_MESSAGE] if message else None,
        recent_transitions=[StateChange(state=state, time=at) for state, at in record.recent],
        last_result=location_result(result, location) if result is not None else None,
        last_handled_probe_request=record.handled_request,
    )


def deciding_result(
    locations: Sequence[str], entries: Iterable[LocationStatus]
) -> ProbeResult | None:
    """The result that speaks for the monitor: the worst state among the wanted locations, the
    most recent among equals, named by its location."""
    best: tuple[int, float, str] | None = None
    chosen: LocationStatus | None = None
    for entry in entries:
        result = entry.last_result
        if entry.name not in locations or result is None:
            continue
        rank = (_SEVERITY.get(entry.state, 0), result.started_at.timestamp(), entry.name)
        if best is None or rank > best:
            best, chosen = rank, entry
    if chosen is None or chosen.last_result is None:
        return None
    return chosen.last_result.model_copy(update={"location": chosen.name})
