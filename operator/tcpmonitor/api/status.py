"""``TcpMonitor.status``: what the operator reports, shaped by the Kubernetes API conventions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from .probe_request import MAX_PROBE_REQUEST, PROBE_REQUEST_ANNOTATION
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
    MAINTENANCE = "Maintenance"  # in a maintenance window: probed, no Events


class ConditionType(StrEnum):
    """The conditions a monitor carries; every mode writes the same ones."""

    READY = "Ready"
    REACHABLE = "Reachable"
    DEGRADED = "Degraded"
    LOCATIONS_AVAILABLE = "LocationsAvailable"  # runner deployments only


class Reason(StrEnum):
    """Condition reasons, the one list: conditions are built from it, the README shows it."""

    PROBING = "Probing"
    PAUSED = "Paused"
    INVALID_SPEC = "InvalidSpec"
    REFERENCE_NOT_FOUND = "ReferenceNotFound"
    REFERENCE_UNREADABLE = "ReferenceUnreadable"
    INTERVAL_TOO_SHORT = "IntervalTooShort"
    TIMEOUT_TOO_SHORT = "TimeoutTooShort"
    NAMESPACE_LIMIT_EXCEEDED = "NamespaceLimitExceeded"
    PROBE_ERROR = "ProbeError"
    TARGET_REACHABLE = "TargetReachable"
    TARGET_DOWN = "TargetDown"
    NO_RESULT = "NoResult"
    PROBES_SKIPPED = "ProbesSkipped"
    TARGET_DEGRADED = "TargetDegraded"
    NOT_DEGRADED = "NotDegraded"
    RUNNERS_AVAILABLE = "RunnersAvailable"
    NO_LIVE_RUNNER = "NoLiveRunner"
    TARGET_FORBIDDEN = "TargetForbidden"
    MAINTENANCE = "Maintenance"


class EventReason(StrEnum):
    """The reasons of the Events the operator posts (standalone: prints)."""

    TARGET_UP = "TargetUp"
    TARGET_DOWN = "TargetDown"
    TARGET_DEGRADED = "TargetDegraded"
    CERTIFICATE_EXPIRING = "CertificateExpiring"
    INVALID_SPEC = "InvalidSpec"
    PROBE_ERROR = "ProbeError"
    PROBES_SKIPPED = "ProbesSkipped"
    LOCATION_UNAVAILABLE = "LocationUnavailable"


@dataclass(frozen=True)
class ConditionReason:
    """One row of the reference: a condition status and the reason that comes with it.

    ``reason`` None stands for the deciding error code in CamelCase (``ConnectionRefused``).
    """

    type: ConditionType
    status: str
    reason: Reason | None
    meaning: str


CONDITION_REASONS: tuple[ConditionReason, ...] = (
    ConditionReason(
        ConditionType.READY, "True", Reason.PROBING, "The spec is valid and the target is probed."
    ),
    ConditionReason(
        ConditionType.READY, "True", Reason.PAUSED, "The spec is valid; probing is paused."
    ),
    ConditionReason(
        ConditionType.READY,
        "True",
        Reason.MAINTENANCE,
        "The spec is valid and the target is probed, in a maintenance window (the state shows "
        "Maintenance, no TargetDown/TargetUp Events); Reachable and Degraded still say what "
        "the probes see.",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.INVALID_SPEC,
        "The spec cannot be probed (a regex that does not compile, base64 that does not "
        "decode, a CA bundle that does not load, ...).",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.REFERENCE_NOT_FOUND,
        "A referenced Secret or ConfigMap, or its key, does not exist.",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.REFERENCE_UNREADABLE,
        "A referenced Secret or ConfigMap could not be read.",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.INTERVAL_TOO_SHORT,
        "spec.interval is below the installation's minimum, or the policy's for the namespace.",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.TIMEOUT_TOO_SHORT,
        "spec.timeout is below the minimum.",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.NAMESPACE_LIMIT_EXCEEDED,
        "The namespace has more monitors than the policy allows; those after the limit in name "
        "order are not probed.",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.PROBE_ERROR,
        "Probing raised an unexpected exception (a bug); the message names it.",
    ),
    ConditionReason(
        ConditionType.READY,
        "False",
        Reason.TARGET_FORBIDDEN,
        "The target policy refuses every address of the target (TARGET_FORBIDDEN); the "
        "message names the rule. Probing goes on, so a policy change acts at once.",
    ),
    ConditionReason(
        ConditionType.REACHABLE,
        "True",
        Reason.TARGET_REACHABLE,
        "The state is Up or Degraded.",
    ),
    ConditionReason(
        ConditionType.REACHABLE,
        "False",
        None,
        "The state is Down: the error code that decided it, in CamelCase.",
    ),
    ConditionReason(
        ConditionType.REACHABLE,
        "False",
        Reason.TARGET_DOWN,
        "The state is Down and no error code is known.",
    ),
    ConditionReason(ConditionType.REACHABLE, "Unknown", Reason.NO_RESULT, "No result yet."),
    ConditionReason(ConditionType.REACHABLE, "Unknown", Reason.PAUSED, "Probing is paused."),
    ConditionReason(
        ConditionType.REACHABLE,
        "Unknown",
        Reason.PROBES_SKIPPED,
        "Probes were dropped for want of a probe slot; the last result is stale.",
    ),
    ConditionReason(
        ConditionType.DEGRADED, "True", Reason.TARGET_DEGRADED, "The state is Degraded."
    ),
    ConditionReason(
        ConditionType.DEGRADED, "False", Reason.NOT_DEGRADED, "The state is Up or Down."
    ),
    ConditionReason(ConditionType.DEGRADED, "Unknown", Reason.NO_RESULT, "No result yet."),
    ConditionReason(ConditionType.DEGRADED, "Unknown", Reason.PAUSED, "Probing is paused."),
    ConditionReason(
        ConditionType.LOCATIONS_AVAILABLE,
        "True",
        Reason.RUNNERS_AVAILABLE,
        "Runner deployments: every listed location has a live runner.",
    ),
    ConditionReason(
        ConditionType.LOCATIONS_AVAILABLE,
        "False",
        Reason.NO_LIVE_RUNNER,
        "Runner deployments: a listed location has no live runner; the message names it.",
    ),
)

EVENT_DOCS: dict[EventReason, tuple[str, str]] = {
    EventReason.TARGET_UP: ("Normal", "The state became Up."),
    EventReason.TARGET_DOWN: ("Warning", "The state became Down."),
    EventReason.TARGET_DEGRADED: ("Warning", "The state became Degraded."),
    EventReason.CERTIFICATE_EXPIRING: (
        "Warning",
        "An expiry warning appeared, the leaf's or a chain certificate's (once, not every probe).",
    ),
    EventReason.INVALID_SPEC: ("Warning", "The spec cannot be probed (once per distinct problem)."),
    EventReason.PROBE_ERROR: ("Warning", "Probing raised an unexpected exception (once per type)."),
    EventReason.PROBES_SKIPPED: (
        "Warning",
        "Probes started being dropped for want of a probe slot (once per run of skips).",
    ),
    EventReason.LOCATION_UNAVAILABLE: (
        "Warning",
        "Runner deployments: a listed location lost its last live runner.",
    ),
}


def _types() -> str:
    names = [t.value for t in ConditionType]
    return ", ".join(names[:-1]) + " or " + names[-1]


class Condition(ResultModel):
    """A condition as in metav1.Condition."""

    type: str = Field(max_length=316, description=f"{_types()}.")
    status: str = Field(max_length=16, description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this condition describes."
    )
    last_transition_time: datetime = Field(description="When status last changed.")
    reason: str = Field(max_length=1024, description="CamelCase reason, for machines.")
    message: str = Field(default="", max_length=MAX_MESSAGE, description="For humans.")


MAX_RECENT_TRANSITIONS = 8


class StateChange(ResultModel):
    """One change of a location's state."""

    state: MonitorState = Field(description="The state entered.")
    time: datetime = Field(description="When.")


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
    recent_transitions: list[StateChange] = Field(
        default_factory=list,
        max_length=MAX_RECENT_TRANSITIONS,
        description=f"The latest state changes, oldest first (at most {MAX_RECENT_TRANSITIONS}"
        "): the controller replays those it did not see, so that a Down that ended while it "
        "was not watching (an API server outage, a failover) still gets its Events.",
    )
    last_result: ProbeResult | None = Field(
        default=None,
        description="This location's last probe result, as lastResult; to keep the status "
        "small, assertions[].target and .actual and tls.chain are left out (tls.chainLength "
        "and tls.chainExpiry stay), texts are cut to "
        f"{LOCATION_TEXT} characters and certificate names to {LOCATION_DNS_NAMES}.",
    )
    last_handled_probe_request: str | None = Field(
        default=None,
        max_length=MAX_PROBE_REQUEST,
        description=f"The {PROBE_REQUEST_ANNOTATION} value this location last probed for.",
    )


class TcpMonitorStatus(ResultModel):
    """Observed state of a TcpMonitor: the controller writes the top-level fields, each
    location's runners their own entry of ``locations``."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the status describes."
    )
    state: MonitorState | None = Field(
        default=None,
        description="Up, Degraded, Down, Unknown (no result yet), Paused or Maintenance (in a "
        "maintenance window).",
    )
    message: str | None = Field(default=None, max_length=MAX_MESSAGE, description="One line.")
    latency: str | None = Field(
        default=None, max_length=32, description="Total time of the last reported probe."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description=f"One per type: {_types()} (runner deployments only).",
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
    last_handled_probe_request: str | None = Field(
        default=None,
        max_length=MAX_PROBE_REQUEST,
        description=f"The value of the {PROBE_REQUEST_ANNOTATION} annotation last handled: "
        "the monitor was probed after it was set (with runners, in every live location), and "
        "lastResult is at least that recent.",
    )
