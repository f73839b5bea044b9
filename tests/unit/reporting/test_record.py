"""The state machine and what is reported from it, without any cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tcpmonitor.api import (
    MonitorState,
    ProbeResult,
    Problem,
    TcpMonitorSpec,
    TcpMonitorStatus,
    Timings,
    TlsInfo,
    Verdict,
)
from tcpmonitor.api.status import MAX_RECENT_TRANSITIONS
from tcpmonitor.reporting import (
    SpecProblem,
    bounds_problem,
    build_status,
    conditions,
    describe_result,
    expiring_event,
    probe_error,
    probe_error_event,
    skipped_event,
    status_body,
    transition_event,
)
from tcpmonitor.reporting.kept_result import keep
from tcpmonitor.reporting.record import (
    MonitorRecord,
    Transition,
    advance,
    newly_expiring,
    pause,
    skip,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def result(
    state: Verdict, *, code: str | None = None, warnings: tuple[str, ...] = ()
) -> ProbeResult:
    return ProbeResult(
        state=state,
        started_at=NOW,
        remote_address="10.0.0.1:5432",
        timings=Timings(connect=1.5, total=2.0),
        error=Problem(code=code, message="10.0.0.1:5432: Connection refused") if code else None,
        warnings=[Problem(code=w, message="soon") for w in warnings],
    )


UP, DOWN = result(Verdict.UP), result(Verdict.DOWN, code="CONNECTION_REFUSED")


def fold(
    record: MonitorRecord, *results: ProbeResult, failure: int = 1, success: int = 1
) -> tuple[MonitorRecord, list[Transition]]:
    transitions = []
    for r in results:
        record, t = advance(
            record, r, failure_threshold=failure, success_threshold=success, now=NOW
        )
        if t:
            transitions.append(t)
    return record, transitions


def test_first_result_is_taken_at_once_even_with_thresholds() -> None:
    record, transitions = fold(MonitorRecord(), DOWN, failure=3)
    assert record.state is MonitorState.DOWN
    assert [(t.previous, t.current) for t in transitions] == [
        (MonitorState.UNKNOWN, MonitorState.DOWN)
    ]


def test_failure_threshold_needs_consecutive_failures() -> None:
    record, _ = fold(MonitorRecord(), UP)
    record, transitions = fold(record, DOWN, DOWN, UP, DOWN, DOWN, failure=3)
    assert record.state is MonitorState.UP and transitions == []
    record, transitions = fold(record, DOWN, failure=3)
    assert record.state is MonitorState.DOWN and len(transitions) == 1
    assert record.consecutive_failures == 3 and record.consecutive_successes == 0


def test_success_threshold_before_recovering() -> None:
    record, _ = fold(MonitorRecord(), DOWN)
    record, transitions = fold(record, UP, success=2)
    assert record.state is MonitorState.DOWN and transitions == []
    record, transitions = fold(record, UP, success=2)
    assert record.state is MonitorState.UP and len(transitions) == 1


def test_up_and_degraded_switch_at_once() -> None:
    degraded = result(Verdict.DEGRADED, warnings=("RESPONSE_TIME_DEGRADED",))
    _record, transitions = fold(MonitorRecord(), UP, degraded, UP, success=5, failure=5)
    assert [t.current for t in transitions] == [
        MonitorState.UP,
        MonitorState.DEGRADED,
        MonitorState.UP,
    ]


def test_times_and_counters_are_recorded() -> None:
    record, _ = fold(MonitorRecord(), UP, UP, DOWN)
    assert record.last_success_time == NOW and record.last_failure_time == NOW
    assert record.last_transition_time == NOW and record.last_probe_time == NOW
    assert record.consecutive_failures == 1


def test_record_resumes_from_status() -> None:
    record, _ = fold(MonitorRecord(), UP, UP)
    status = build_status(record, None, 3, [], NOW)
    wire = TcpMonitorStatus.model_validate(status_body(status))
    resumed = MonitorRecord.from_status(wire)
    # The recent changes are for the controller and travel in location entries only.
    assert resumed == replace(record, recent=())


def test_recent_changes_are_remembered_oldest_first_and_bounded() -> None:
    record, transitions = fold(MonitorRecord(), *([UP, DOWN] * MAX_RECENT_TRANSITIONS))
    assert len(transitions) == 2 * MAX_RECENT_TRANSITIONS
    assert len(record.recent) == MAX_RECENT_TRANSITIONS
    assert [state for state, _ in record.recent][-2:] == [MonitorState.UP, MonitorState.DOWN]


def test_pause_is_a_transition_once() -> None:
    record, t1 = pause(MonitorRecord(state=MonitorState.UP), NOW)
    _, t2 = pause(record, NOW)
    assert record.state is MonitorState.PAUSED and t1 is not None and t2 is None


def _by_type(conds: list) -> dict[str, tuple[str, str]]:  # type: ignore[type-arg]
    return {c.type: (c.status, c.reason) for c in conds}


def test_ready_means_probing_not_target_up() -> None:
    record, _ = fold(MonitorRecord(), DOWN)
    conds = _by_type(conditions(record, None, 1, [], NOW))
    assert conds == {
        "Ready": ("True", "Probing"),
        "Reachable": ("False", "ConnectionRefused"),
        "Degraded": ("False", "NotDegraded"),
    }


def test_invalid_spec_is_ready_false_with_reason() -> None:
    problem = SpecProblem("ReferenceNotFound", "spec.sendFrom.secretKeyRef: Secret ns/x not found")
    conds = conditions(MonitorRecord(), problem, 2, [], NOW)
    ready = next(c for c in conds if c.type == "Ready")
    assert (ready.status, ready.reason, ready.observed_generation) == (
        "False",
        "ReferenceNotFound",
        2,
    )
    assert "Secret ns/x not found" in ready.message


def test_condition_transition_time_moves_only_on_status_change() -> None:
    record, _ = fold(MonitorRecord(), UP)
    first = conditions(record, None, 1, [], NOW)
    later = NOW + timedelta(minutes=5)
    same = conditions(record, None, 2, first, later)
    assert all(c.last_transition_time == NOW for c in same)
    record, _ = fold(record, DOWN)
    changed = {c.type: c for c in conditions(record, None, 2, same, later)}
    assert changed["Reachable"].last_transition_time == later
    assert changed["Ready"].last_transition_time == NOW


def test_status_carries_everything_the_columns_need() -> None:
    record, _ = fold(MonitorRecord(), DOWN)
    body = status_body(build_status(record, None, 7, [], NOW))
    assert body["observedGeneration"] == 7
    assert body["state"] == "Down"
    assert body["latency"] == "2.0ms"
    assert body["lastResult"]["error"]["code"] == "CONNECTION_REFUSED"
    assert body["lastProbeTime"] == "2026-11-21T12:00:00Z"
    assert body["message"].startswith("CONNECTION_REFUSED 10.0.0.1:5432: Connection refused")


def test_events_carry_code_address_and_timings() -> None:
    event = transition_event(Transition(MonitorState.UP, MonitorState.DOWN, NOW), DOWN)
    assert event is not None
    assert (event.type, event.reason) == ("Warning", "TargetDown")
    assert "CONNECTION_REFUSED" in event.message and "10.0.0.1:5432" in event.message
    assert "connect 1.5ms" in event.message and "total 2.0ms" in event.message
    up = transition_event(Transition(MonitorState.DOWN, MonitorState.UP, NOW), UP)
    assert up is not None and (up.type, up.reason) == ("Normal", "TargetUp")
    assert transition_event(Transition(MonitorState.UP, MonitorState.PAUSED, NOW), None) is None


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ((), ("TLS_CERTIFICATE_EXPIRING",), True),
        (("TLS_CERTIFICATE_EXPIRING",), ("TLS_CERTIFICATE_EXPIRING",), False),
        ((), (), False),
        ((), ("TLS_CHAIN_CERTIFICATE_EXPIRING",), True),
        (("TLS_CERTIFICATE_EXPIRING",), ("TLS_CHAIN_CERTIFICATE_EXPIRING",), True),
        (("TLS_CHAIN_CERTIFICATE_EXPIRING",), ("TLS_CHAIN_CERTIFICATE_EXPIRING",), False),
    ],
)
def test_certificate_expiring_is_reported_once(
    before: tuple[str, ...], after: tuple[str, ...], expected: bool
) -> None:
    previous = result(Verdict.DEGRADED, warnings=before)
    current = result(Verdict.DEGRADED, warnings=after)
    assert newly_expiring(keep(previous), current) is expected


def test_describe_result_without_result() -> None:
    assert describe_result(None) == "no probe result yet"


def test_skipped_probes_make_the_result_unknown_until_the_next_probe() -> None:
    record, _ = fold(MonitorRecord(), UP)
    starved = skip(skip(record))
    assert starved.skipped_probes == 2 and starved.state is MonitorState.UP
    status = build_status(starved, None, 1, [], NOW)
    reachable = next(c for c in status.conditions if c.type == "Reachable")
    assert (reachable.status, reachable.reason) == ("Unknown", "ProbesSkipped")
    assert status.skipped_probes == 2
    assert status.message is not None and status.message.startswith("2 probe(s) in a row skipped")
    assert MonitorRecord.from_status(status).skipped_probes == 2  # survives a restart
    probed, _ = fold(starved, UP)
    assert probed.skipped_probes == 0
    assert skipped_event(skip(record)).reason == "ProbesSkipped"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"interval": "0s", "timeout": "0s"}, "IntervalTooShort"),
        ({"interval": "30s", "timeout": "1s"}, "IntervalTooShort"),  # under a raised minimum
        ({"interval": "2m", "timeout": "0s"}, "TimeoutTooShort"),
        ({"interval": "2m", "timeout": "soon"}, "InvalidSpec"),
        ({"interval": "1m", "timeout": "10ms"}, None),
    ],
)
def test_bounds_problem_catches_what_the_schema_would_refuse_today(
    spec: dict[str, str], reason: str | None
) -> None:
    valid = TcpMonitorSpec(host="h", port=1)
    stored = valid.model_copy(update=spec)  # stored in etcd before the CRD had the bound
    problem = bounds_problem(stored, min_interval=60.0)
    assert (problem.reason if problem else None) == reason


def test_probe_error_names_the_exception_type() -> None:
    problem = probe_error(ZeroDivisionError("float modulo"))
    assert (problem.reason, problem.message) == ("ProbeError", "ZeroDivisionError: float modulo")
    ready = conditions(MonitorRecord(), problem, 1, [], NOW)[0]
    assert (ready.type, ready.status, ready.reason) == ("Ready", "False", "ProbeError")
    assert probe_error_event(problem).type == "Warning"


def test_the_expiring_event_names_the_chain_certificate_that_expires_first() -> None:
    expiry = NOW + timedelta(days=5)
    current = result(Verdict.DEGRADED, warnings=("TLS_CHAIN_CERTIFICATE_EXPIRING",))
    current = current.model_copy(
        update={
            "tls": TlsInfo(
                verified=True, chain_expiry=expiry, chain_expiry_subject="CN=Intermediate"
            )
        }
    )
    event = expiring_event(current)
    assert (event.type, event.reason) == ("Warning", "CertificateExpiring")
    assert event.message == f"chain certificate CN=Intermediate expires {expiry.isoformat()}"
