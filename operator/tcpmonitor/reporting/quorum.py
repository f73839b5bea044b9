"""The overall verdict from per-location results: ``minFailedLocations`` decides Down. Pure.

Runners apply the failure and success thresholds per location; the controller only counts.
Fewer failing locations than the quorum is Degraded, not Up: something is wrong somewhere and
the message says where.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..api import LocationStatus, MonitorState
from ..api.result import MAX_MESSAGE


@dataclass(frozen=True)
class QuorumVerdict:
    state: MonitorState
    message: str
    unavailable: tuple[str, ...] = ()  # locations with no live runner
    error_code: str | None = None  # the first Down location's error code, when Down


def aggregate(
    locations: Sequence[str],
    min_failed: int,
    entries: Iterable[LocationStatus],
    live_locations: set[str] | None = None,
) -> QuorumVerdict:
    """Combine the entries of the wanted ``locations``; stale entries of others are ignored."""
    by_name = {e.name: e for e in entries if e.name in locations}
    down = tuple(n for n in locations if n in by_name and by_name[n].state is MonitorState.DOWN)
    degraded = tuple(
        n for n in locations if n in by_name and by_name[n].state is MonitorState.DEGRADED
    )
    up = tuple(n for n in locations if n in by_name and by_name[n].state is MonitorState.UP)
    unavailable = tuple(
        n for n in locations if live_locations is not None and n not in live_locations
    )
    details = [f"{n}: {by_name[n].message or by_name[n].error_code or 'Down'}" for n in down]
    if len(down) >= min_failed:
        state = MonitorState.DOWN
        message = f"Down in {len(down)} of {len(locations)} locations (quorum {min_failed}); "
    elif down or degraded:
        state = MonitorState.DEGRADED
        message = (
            f"Down in {len(down)} of {len(locations)} locations (below quorum {min_failed}), "
            f"degraded in {len(degraded)}; "
            if down
            else f"Degraded in {len(degraded)} of {len(locations)} locations; "
        )
        details += [f"{n}: Degraded" for n in degraded]
    elif up:
        state = MonitorState.UP
        message = f"Up in {len(up)} of {len(locations)} locations"
    else:
        state = MonitorState.UNKNOWN
        message = "no location has reported yet"
    if details:
        message += "; ".join(details)
    if unavailable:
        message += f" (no live runner in {', '.join(unavailable)})"
    code = next((by_name[n].error_code for n in down if by_name[n].error_code), None)
    return QuorumVerdict(
        state, message[:MAX_MESSAGE], unavailable, code if state is MonitorState.DOWN else None
    )
