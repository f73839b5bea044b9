"""What to tell people, computed from what was observed. Pure: no I/O, no clock of its own.

``record`` folds probe results into a monitor's state (the failure and success thresholds)
and keeps the last result compact (``kept_result``), ``quorum`` combines locations,
``problems`` is the one spec check, and ``conditions``, ``events``, ``messages`` and
``status`` say it the same way in every mode.
"""

from .conditions import (
    ConditionMark,
    aggregated_conditions,
    condition_marks,
    conditions,
    make_condition,
)
from .events import (
    EventSpec,
    expiring_event,
    invalid_object_event,
    invalid_spec_event,
    location_unavailable_event,
    probe_error_event,
    skipped_event,
    state_event,
    transition_event,
)
from .messages import describe_result, describe_skipped
from .problems import (
    INTERVAL_TOO_SHORT,
    NAMESPACE_LIMIT_EXCEEDED,
    TIMEOUT_TOO_SHORT,
    PolicyFloor,
    SpecProblem,
    bounds_problem,
    check_spec,
    namespace_limit_problem,
    probe_error,
)
from .status import build_status, status_body

__all__ = [
    "INTERVAL_TOO_SHORT",
    "NAMESPACE_LIMIT_EXCEEDED",
    "TIMEOUT_TOO_SHORT",
    "ConditionMark",
    "EventSpec",
    "PolicyFloor",
    "SpecProblem",
    "aggregated_conditions",
    "bounds_problem",
    "build_status",
    "check_spec",
    "condition_marks",
    "conditions",
    "describe_result",
    "describe_skipped",
    "expiring_event",
    "invalid_object_event",
    "invalid_spec_event",
    "location_unavailable_event",
    "make_condition",
    "namespace_limit_problem",
    "probe_error",
    "probe_error_event",
    "skipped_event",
    "state_event",
    "status_body",
    "transition_event",
]
