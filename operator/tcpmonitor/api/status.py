"""``TcpMonitor.status``: what the operator reports, shaped by the Kubernetes API conventions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from .result import MAX_MESSAGE, ProbeResult, ResultModel

# What one location's copy of a result may carry: sixteen full results would make a status of
# more than half a megabyte (tests/unit/reporting/test_status_size.py).
LOCATION_TEXT = 256
LOCATION_DNS_NAMES = 4


class MonitorState(StrEnum):
    """A monitor's state: a probe verdict, or why there is none."""

    UP = "Up"
    DEGRADED = "Degraded"
    DOWN = "Down"
    UNKNOWN = "Unknown"
    PAUSED = "Paused"


class Condition(ResultModel):
    """A condition as in metav1.Condition."""

    type: str = Field(max_length=316, description="Ready, Reachable or Degraded.")
    status: str = Field(max_length=16, description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this condition describes."
    )
    last_transition_time: datetime = Field(description="When status last changed.")
    reason: str = Field(max_length=1024, description="CamelCase reason, for machines.")
    message: str = Field(default="", max_length=MAX_MESSAGE, description="For humans.")


class LocationStatus(ResultModel):
    """One location's view of the monitor, written by the runner that probed it."""

    name: str = Field(max_length=63, description="The location.")
    state: MonitorState = Field(description="This location's state (thresholds applied).")
    runner: str | None = Field(default=None, max_length=253, description="Runner that probed.")
    last_probe_time: datetime | None = Field(default=None, description="Last probe start.")
    last_transition_time: datetime | None = Field(default=None, description="Last state change.")
    consecutive_successes: int = Field(default=0, ge=0, description="Successes in a row.")
    consecutive_failures: int = Field(default=0, ge=0, description="Failures in a row.")
    error_code: str | None = Field(default=None, max_length=64, description="Last error code.")
    total_ms: float | None = Field(default=None, description="Total time of the last probe, ms.")
    message: str | None = Field(default=None, max_length=MAX_MESSAGE, description="One line.")
    last_result: ProbeResult | None = Field(
        default=None,
        description="This location's last probe result, as lastResult; to keep the status "
        "small, assertions[].target and .actual are left out, texts are cut to "
        f"{LOCATION_TEXT} characters and certificate names to {LOCATION_DNS_NAMES}.",
    )


class TcpMonitorStatus(ResultModel):
    """Observed state of a TcpMonitor: the controller writes the top-level fields, each
    location's runners their own entry of ``locations``."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the status describes."
    )
    state: MonitorState | None = Field(
        default=None, description="Up, Degraded, Down, Unknown (no result yet) or Paused."
    )
    message: str | None = Field(default=None, max_length=MAX_MESSAGE, description="One line.")
    latency: str | None = Field(
        default=None, max_length=32, description="Total time of the last reported probe."
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, description="Ready, Reachable, Degraded."
    )
    last_result: ProbeResult | None = Field(
        default=None,
        description="The last probe result; with runners, the result that decided the state "
        "(the worst location's, the most recent among equals), its location named.",
    )
    last_probe_time: datetime | None = Field(default=None, description="Last probe start.")
    last_transition_time: datetime | None = Field(default=None, description="Last state change.")
    last_success_time: datetime | None = Field(default=None, description="Last Up or Degraded.")
    last_failure_time: datetime | None = Field(default=None, description="Last Down.")
    consecutive_successes: int = Field(default=0, ge=0, description="Successes in a row.")
    consecutive_failures: int = Field(default=0, ge=0, description="Failures in a row.")
    skipped_probes: int = Field(
        default=0,
        ge=0,
        description="Probes dropped in a row since the last result because no probe slot was "
        "free before the next was due (the prober is saturated); the result is stale while "
        "this is above 0.",
    )
    locations: list[LocationStatus] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Per-location results; each entry is written by that location's runners.",
    )
