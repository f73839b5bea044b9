"""Why a spec the API server accepted is not probed: the one spec check every mode runs. Pure.

A problem makes Ready=False with its reason; the same check runs in the all-in-one operator,
in runners and in ``tcpmonitor run``, so every mode refuses the same specs in the same words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..api import DurationError, Reason, TcpMonitorSpec, format_duration
from ..api.maintenance import maintenance_problem
from ..api.result import MAX_MESSAGE
from ..api.spec import MIN_TIMEOUT_SECONDS
from ..probe import PlanError, ProbeMaterial, ProbePlan, compile_plan


@dataclass(frozen=True)
class SpecProblem:
    """Why a spec that the API server accepted cannot be probed (Ready=False)."""

    reason: str  # InvalidSpec, ReferenceNotFound, ...
    message: str
    # For the operator's log only (what the API server said about a Secret), never for status
    # or Events; a change of detail alone is not a new problem.
    detail: str | None = field(default=None, compare=False)

    @property
    def logged(self) -> str:
        return self.detail or self.message


INTERVAL_TOO_SHORT = Reason.INTERVAL_TOO_SHORT.value
TIMEOUT_TOO_SHORT = Reason.TIMEOUT_TOO_SHORT.value
NAMESPACE_LIMIT_EXCEEDED = Reason.NAMESPACE_LIMIT_EXCEEDED.value


@dataclass(frozen=True)
class PolicyFloor:
    """A namespace's minimum interval set by the platform's policy."""

    namespace: str
    seconds: float


def bounds_problem(
    spec: TcpMonitorSpec, min_interval: float, policy_floor: PolicyFloor | None = None
) -> SpecProblem | None:
    """Why the numbers of a spec must not be scheduled, or None.

    The schema refuses these already; this catches objects stored before the CRD had the bound
    (or written with a looser CRD), a platform minimum raised above the schema's, and a
    namespace's minimum set by policy (``policy_floor``), which the message names.
    """
    try:
        interval, timeout = spec.interval_seconds, spec.timeout_seconds
    except DurationError as exc:
        return SpecProblem(Reason.INVALID_SPEC.value, str(exc))
    if (
        policy_floor is not None
        and policy_floor.seconds > min_interval
        and not interval >= policy_floor.seconds
    ):
        return SpecProblem(
            INTERVAL_TOO_SHORT,
            f"refused by policy: spec.interval: {spec.interval} is below the minimum of "
            f"{format_duration(policy_floor.seconds)} for namespace "
            f'"{policy_floor.namespace}"; not probed',
        )
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


def namespace_limit_problem(namespace: str, max_monitors: int) -> SpecProblem:
    """A monitor beyond its namespace's ``max_monitors``: the same words for all of them, so
    that a monitor moving in and out of the limit does not get a new Event each time."""
    return SpecProblem(
        NAMESPACE_LIMIT_EXCEEDED,
        f'refused by policy: namespace "{namespace}" may have at most {max_monitors} '
        f"monitors (counted in name order); not probed",
    )


def probe_error(exc: BaseException) -> SpecProblem:
    """An unexpected exception while probing one monitor (a bug): Ready=False ProbeError."""
    return SpecProblem(Reason.PROBE_ERROR.value, f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE])


def plan_problem(exc: Exception) -> SpecProblem:
    """Why compiling a spec (or reading what it references) failed: Ready=False's reason.

    A PlanError carries its reason (InvalidSpec, ReferenceNotFound); any other error is the
    API failing to give us a reference (ReferenceUnreadable).
    """
    if isinstance(exc, PlanError):
        return SpecProblem(exc.reason, f"{exc.field}: {exc.message}", exc.detail)
    return SpecProblem(Reason.REFERENCE_UNREADABLE.value, str(exc)[:500])


async def check_spec(
    spec: TcpMonitorSpec,
    min_interval: float,
    resolve: Callable[[], Awaitable[ProbeMaterial]],
    policy_floor: PolicyFloor | None = None,
) -> tuple[ProbePlan | None, SpecProblem | None]:
    """The one spec check: the bounds, the references (read by ``resolve``), the plan.

    Every mode runs it: the all-in-one runtime and runners before probing, the controller of a
    runner deployment for Ready. The only I/O is the caller's ``resolve``.
    """
    problem = bounds_problem(spec, min_interval, policy_floor)
    if problem is not None:
        return None, problem
    window = maintenance_problem(spec.maintenance)
    if window is not None:
        return None, SpecProblem(Reason.INVALID_SPEC.value, f"{window[0]}: {window[1]}")
    try:
        return compile_plan(spec, await resolve()), None
    except Exception as exc:  # an API error must not take the other monitors down
        return None, plan_problem(exc)
