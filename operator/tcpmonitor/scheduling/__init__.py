"""Scheduling: when each monitor is probed. No kopf, no Kubernetes (runners reuse it)."""

from .fair_gate import FairGate
from .scheduler import (
    SKIP_CONCURRENCY,
    SKIP_OVERLAP,
    Scheduler,
    SchedulerStats,
    default_share,
    phase_of,
)

__all__ = [
    "SKIP_CONCURRENCY",
    "SKIP_OVERLAP",
    "FairGate",
    "Scheduler",
    "SchedulerStats",
    "default_share",
    "phase_of",
]
