"""A maintenance window in the state machine: Maintenance shown, no state Events, and the first
result after it compared with the state before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tcpmonitor.api import MonitorState, ProbeResult, TcpMonitorStatus, Timings, Verdict
from tcpmonitor.reporting import build_status, status_body, transition_event
from tcpmonitor.reporting.record import MonitorRecord, advance, pause

T0 = datetime(2026, 12, 24, 20, 0, tzinfo=UTC)
UNTIL = T0 + timedelta(hours=1)


def result(state: Verdict, at: datetime) -> ProbeResult:
    error = {"code": "CONNECTION_REFUSED", "message": "refused"} if state is Verdict.DOWN else None
    return ProbeResult.model_validate(
        {
            "state": state.value,
            "startedAt": at.isoformat(),
            "timings": Timings(total=1.0).model_dump(),
            "error": error,
        }
    )


def run(
    record: MonitorRecord, steps: list[tuple[Verdict, datetime | None]], threshold: int = 1
) -> tuple[MonitorRecord, list[str], list[MonitorState]]:
    """Fold results in; the Events the runtime would post, and the states status would show."""
    events: list[str] = []
    shown: list[MonitorState] = []
    for i, (verdict, until) in enumerate(steps):
        now = T0 + timedelta(minutes=i)
        record, transition = advance(
            record,
            result(verdict, now),
            failure_threshold=threshold,
            success_threshold=1,
            now=now,
            maintenance_until=until,
        )
        if transition is not None:
            event = transition_event(transition, record.last_result)
            if event is not None:
                events.append(event.reason)
        shown.append(build_status(record, None, 1, [], now).state or MonitorState.UNKNOWN)
    return record, events, shown


UP, DOWN = Verdict.UP, Verdict.DOWN


def test_down_during_a_window_posts_nothing_and_after_it_posts_target_down_once() -> None:
    record, events, shown = run(
        MonitorRecord(), [(UP, None), (DOWN, UNTIL), (DOWN, UNTIL), (DOWN, None), (DOWN, None)]
    )
    assert events == ["TargetUp", "TargetDown"]
    assert shown == [
        MonitorState.UP,
        MonitorState.MAINTENANCE,
        MonitorState.MAINTENANCE,
        MonitorState.DOWN,
        MonitorState.DOWN,
    ]
    assert record.consecutive_failures == 4  # probing went on, results recorded


def test_a_flap_inside_the_window_is_not_reported_when_the_state_is_the_same_after_it() -> None:
    _, events, shown = run(
        MonitorRecord(), [(UP, None), (DOWN, UNTIL), (UP, UNTIL), (DOWN, UNTIL), (UP, None)]
    )
    assert events == ["TargetUp"]
    assert shown[-1] is MonitorState.UP


def test_a_monitor_down_before_the_window_and_up_after_it_gets_target_up() -> None:
    _, events, _ = run(MonitorRecord(), [(DOWN, None), (DOWN, UNTIL), (UP, None)])
    assert events == ["TargetDown", "TargetUp"]


def test_a_monitor_created_inside_a_window_reports_its_state_when_it_ends() -> None:
    _, events, shown = run(MonitorRecord(), [(DOWN, UNTIL), (DOWN, UNTIL), (DOWN, None)])
    assert events == ["TargetDown"]
    assert shown == [MonitorState.MAINTENANCE, MonitorState.MAINTENANCE, MonitorState.DOWN]


def test_thresholds_apply_across_the_window() -> None:
    # failureThreshold 3: two failures in the window and one after make three.
    _, events, shown = run(
        MonitorRecord(), [(UP, None), (DOWN, UNTIL), (DOWN, UNTIL), (DOWN, None)], threshold=3
    )
    assert events == ["TargetUp", "TargetDown"] and shown[-1] is MonitorState.DOWN


def test_the_status_in_a_window_shows_maintenance_ready_and_what_the_probes_see() -> None:
    record, _, _ = run(MonitorRecord(), [(UP, None), (DOWN, UNTIL)])
    status = build_status(record, None, 1, [], T0)
    assert status.state is MonitorState.MAINTENANCE
    assert status.message is not None
    assert status.message.startswith("maintenance until 2026-12-24T21:00:00Z; last:")
    by_type = {c.type: (c.status, c.reason) for c in status.conditions}
    assert by_type["Ready"] == ("True", "Maintenance")
    assert by_type["Reachable"] == ("False", "ConnectionRefused")
    assert status.last_result is not None and status.last_result.state is Verdict.DOWN


def test_pausing_in_a_window_shows_paused_and_a_restart_in_a_window_starts_afresh() -> None:
    record, _, _ = run(MonitorRecord(), [(UP, None), (DOWN, UNTIL)])
    paused, transition = pause(record, T0)
    assert paused.shown_state is MonitorState.PAUSED and transition is not None
    stored = TcpMonitorStatus.model_validate(status_body(build_status(record, None, 1, [], T0)))
    resumed = MonitorRecord.from_status(stored)
    assert resumed.state is MonitorState.UNKNOWN and resumed.maintenance_until is None
    assert resumed.consecutive_failures == 1
