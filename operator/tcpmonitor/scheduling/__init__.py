"""When each monitor is probed (``scheduler``, ``fair_gate``) and the runtime that holds one
process's monitors, folds their results and reports them (``runtime``). No kopf, no Kubernetes:
the operator, runners and ``tcpmonitor run`` share it."""

from .fair_gate import FairGate
from .namespace_limits import NO_LIMITS, LimitsSource, NamespaceLimits, no_limits
from .scheduler import (
    SKIP_CONCURRENCY,
    SKIP_OVERLAP,
    Scheduler,
    SchedulerStats,
    default_share,
    phase_of,
)

__all__ = [
    "NO_LIMITS",
    "SKIP_CONCURRENCY",
    "SKIP_OVERLAP",
    "FairGate",
    "LimitsSource",
    "NamespaceLimits",
    "Scheduler",
    "SchedulerStats",
    "default_share",
    "no_limits",
    "phase_of",
]
