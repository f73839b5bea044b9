"""The status every mode writes, computed from a record. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..api import MonitorState, TcpMonitorStatus
from ..api.result import MAX_MESSAGE
from .conditions import PreviousCondition, conditions
from .messages import describe_result, describe_skipped
from .problems import SpecProblem
from .record import MonitorRecord


def build_status(
    record: MonitorRecord,
    problem: SpecProblem | None,
    generation: int | None,
    previous: Sequence[PreviousCondition],
    now: datetime,
) -> TcpMonitorStatus:
    result = record.last_result  # rebuilt from its kept form: read it once
    if problem is not None:
        message = f"{problem.reason}: {problem.message}"
    elif record.state is MonitorState.PAUSED:
        message = "paused"
    elif record.skipped_probes:
        message = f"{describe_skipped(record)}; last: {describe_result(result)}"
    elif record.maintenance_until is not None:
        until = record.maintenance_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"maintenance until {until}; last: {describe_result(result)}"
    else:
        message = describe_result(result)
    total = result.timings.total if result else None
    return TcpMonitorStatus(
        observed_generation=generation,
        state=record.shown_state,
        message=message[:MAX_MESSAGE],
        latency=None if total is None else f"{total:.1f}ms",
        conditions=conditions(record, problem, generation, previous, now),
        last_result=result,
        last_probe_time=record.last_probe_time,
        last_transition_time=record.last_transition_time,
        last_success_time=record.last_success_time,
        last_failure_time=record.last_failure_time,
        consecutive_successes=record.consecutive_successes,
        consecutive_failures=record.consecutive_failures,
        skipped_probes=record.skipped_probes,
        last_handled_probe_request=record.handled_request,
    )


def status_body(status: TcpMonitorStatus) -> dict[str, Any]:
    """The wire form of the top-level status fields, times as RFC 3339 strings.

    ``locations`` is left out: its entries belong to the runners (server-side apply, one field
    manager per location), and a merge patch carrying the list would replace all of them.
    """
    return status.model_dump(mode="json", by_alias=True, exclude={"locations"})
