"""Scheduling: when each monitor is probed. No kopf, no Kubernetes (runners reuse it)."""

from .scheduler import Scheduler, SchedulerStats, phase_of

__all__ = ["Scheduler", "SchedulerStats", "phase_of"]
