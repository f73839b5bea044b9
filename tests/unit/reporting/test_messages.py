"""One-line messages: what describe_result says, and what of it changes with every probe."""

from __future__ import annotations

from datetime import UTC, datetime

from tcpmonitor.api import ProbeResult, Problem, ProtocolInfo, Timings, Verdict
from tcpmonitor.reporting import describe_result
from tcpmonitor.reporting.messages import without_timings


def test_without_timings_removes_exactly_what_describe_result_adds() -> None:
    result = ProbeResult(
        state=Verdict.DOWN,
        started_at=datetime(2026, 12, 1, tzinfo=UTC),
        remote_address="10.0.0.1:443",
        timings=Timings(dns=0.4, connect=1.0, total=3.0),
        error=Problem(code="CONNECT_TIMEOUT", message="10.0.0.1:443: timed out"),
    )
    described = describe_result(result)
    assert without_timings(described) == "CONNECT_TIMEOUT 10.0.0.1:443: timed out"
    summary = f"Down in 1 of 2 locations (quorum 1); eu: {described} (no live runner in us)"
    assert without_timings(summary) == (
        "Down in 1 of 2 locations (quorum 1); eu: CONNECT_TIMEOUT 10.0.0.1:443: timed out "
        "(no live runner in us)"
    )


def _result(**fields: object) -> ProbeResult:
    return ProbeResult(
        started_at=datetime(2026, 12, 1, tzinfo=UTC),
        remote_address="10.0.0.1:25",
        timings=Timings(connect=1.0, total=3.0),
        **fields,  # type: ignore[arg-type]
    )


def test_a_protocol_check_names_the_protocol_and_what_the_server_said() -> None:
    up = _result(state=Verdict.UP, protocol=ProtocolInfo(name="SMTP", detail="mx ESMTP Postfix"))
    assert without_timings(describe_result(up)) == "10.0.0.1:25 Up [SMTP: mx ESMTP Postfix]"
    refused = _result(
        state=Verdict.DOWN,
        error=Problem(
            code="STARTTLS_REFUSED", message="10.0.0.1:25: the SMTP server does not offer STARTTLS"
        ),
        protocol=ProtocolInfo(name="SMTP", detail="mx ESMTP Postfix"),
    )
    assert without_timings(describe_result(refused)) == (
        "STARTTLS_REFUSED 10.0.0.1:25: the SMTP server does not offer STARTTLS "
        "[SMTP: mx ESMTP Postfix]"
    )
    # A failure before the server said anything: the error says it all.
    silent = _result(
        state=Verdict.DOWN,
        error=Problem(code="CONNECTION_REFUSED", message="10.0.0.1:25: Connection refused"),
        protocol=ProtocolInfo(name="SMTP"),
    )
    assert without_timings(describe_result(silent)) == (
        "CONNECTION_REFUSED 10.0.0.1:25: Connection refused"
    )
