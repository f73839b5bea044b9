"""Why a spec the API server accepted is not probed: the one spec check every mode runs. Pure.

A problem makes Ready=False with its reason; the same check runs in the all-in-one operator,
in runners and in ``tcpmonitor run``, so every mode refuses the same specs in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api import DurationError, TcpMonitorSpec, format_duration
from ..api.result import MAX_MESSAGE
from ..api.spec import MIN_TIMEOUT_SECONDS


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


def probe_error(exc: BaseException) -> SpecProblem:
    """An unexpected exception while probing one monitor (a bug): Ready=False ProbeError."""
    return SpecProblem("ProbeError", f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE])
