"""Maintenance windows: when a monitor's target is expected to fail, and nobody is to be paged.

A window is recurring (a five-field cron expression in an IANA time zone, and a duration) or
one-off (a start and an end). During one the monitor keeps probing and records its results, but
its state shows Maintenance and no TargetDown/TargetUp Events are posted; the first result after
it is reported as usual. For many monitors at once (a node drain, a database upgrade) the
annotation ``tcpmonitor.dev/maintenance-until: <RFC 3339 time>`` opens a window until then, and
``kubectl annotate tcpmonitors -l app=payments tcpmonitor.dev/maintenance-until=...`` sets it on
every monitor a label selector picks.

Cron expressions are evaluated by cronsim (the cron evaluator of Healthchecks.io: maintained,
no dependencies, typed, and it follows Debian cron on daylight-saving changes: a start time that
does not exist that day runs at the first minute after the gap, one that exists twice runs
once); time zones by the standard library's zoneinfo (tzdata where the system has none).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator

from .. import GROUP
from .durations import DURATION_MAX_LENGTH, DURATION_PATTERN, parse_duration
from .rules import ApiModel, CrossFieldRule

MAINTENANCE_ANNOTATION = f"{GROUP}/maintenance-until"
MAX_WINDOWS = 16
_CRON_FIELD = r"[0-9A-Za-z*/,?-]+"
CRON_PATTERN = rf"^{_CRON_FIELD}( +{_CRON_FIELD}){{4}}$"
TIME_ZONE_PATTERN = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a five-field cron expression, or None."""
    if len(expression.split()) != 5:
        return (
            f"invalid cron expression {expression!r}: five fields are needed (minute hour "
            "day-of-month month day-of-week), e.g. '0 3 * * SUN'"
        )
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"invalid cron expression {expression!r}: {exc}"
    return None


def time_zone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}: an IANA name such as Europe/Berlin or UTC"
    return None


_ONE_FORM = "a window is either recurring (schedule and duration) or one-off (start and end)"
_SCHEDULE_AND_DURATION = "schedule and duration go together"
_START_AND_END = "start and end go together"
_END_AFTER_START = "end must be after start"


def _one_form(w: MaintenanceWindow) -> str | None:
    return None if (w.schedule is None) != (w.start is None) else _ONE_FORM


def _schedule_and_duration(w: MaintenanceWindow) -> str | None:
    return None if (w.schedule is None) == (w.duration is None) else _SCHEDULE_AND_DURATION


def _start_and_end(w: MaintenanceWindow) -> str | None:
    return None if (w.start is None) == (w.end is None) else _START_AND_END


def _end_after_start(w: MaintenanceWindow) -> str | None:
    if w.start is None or w.end is None or w.end > w.start:
        return None
    return _END_AFTER_START


class MaintenanceWindow(ApiModel):
    """One window: recurring (schedule, duration, timeZone) or one-off (start, end)."""

    schedule: str | None = Field(
        default=None,
        max_length=128,
        pattern=CRON_PATTERN,
        description="Recurring: when the window opens, a cron expression of five fields "
        "(minute hour day-of-month month day-of-week) in timeZone, e.g. '0 3 * * SUN'.",
    )
    duration: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        max_length=DURATION_MAX_LENGTH,
        description="Recurring: how long the window stays open, e.g. 2h (elapsed time, also "
        "across a daylight-saving change).",
    )
    # No default written into the object: a default inside a list item makes every client-side
    # `kubectl apply` of an unchanged manifest replace the list ("configured" each time).
    time_zone: str | None = Field(
        default=None,
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        description="Recurring: the IANA time zone of schedule, e.g. Europe/Berlin; UTC when "
        "not given.",
    )
    start: datetime | None = Field(default=None, description="One-off: when the window opens.")
    end: datetime | None = Field(default=None, description="One-off: when it closes.")

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # The API server takes a time without an offset too; Kubernetes reads it as UTC.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    cross_field_rules = (
        CrossFieldRule(
            rule="has(self.schedule) != has(self.start)",
            message_expression=f"'{_ONE_FORM}'",
            check=_one_form,
        ),
        CrossFieldRule(
            rule="has(self.schedule) == has(self.duration)",
            message_expression=f"'{_SCHEDULE_AND_DURATION}'",
            check=_schedule_and_duration,
        ),
        CrossFieldRule(
            rule="has(self.start) == has(self.end)",
            message_expression=f"'{_START_AND_END}'",
            check=_start_and_end,
        ),
        CrossFieldRule(
            rule="!has(self.start) || !has(self.end) || self.end > self.start",
            message_expression=f"'{_END_AFTER_START}'",
            check=_end_after_start,
            field_path=".end",
        ),
    )

    @property
    def zone(self) -> str:
        return self.time_zone or "UTC"

    def open_until(self, now: datetime) -> datetime | None:
        """When this window closes if it is open at ``now``, else None."""
        if self.start is not None and self.end is not None:
            return self.end if self.start <= now < self.end else None
        if self.schedule is None or self.duration is None or window_problem(self) is not None:
            return None  # refused by the spec check (Ready=False), never open
        zone = ZoneInfo(self.zone)
        length = timedelta(seconds=parse_duration(self.duration))
        # Openings are wall-clock times in the zone, compared here as instants. The latest
        # opening at or before now closes last (cronsim's reverse iteration starts before its
        # argument, hence the second added); but on the night the clocks go back, an opening
        # in the repeated hour is "later" on the wall clock than now, so the first opening
        # since now - duration is looked at too.
        ends = []
        local = now.astimezone(zone).replace(microsecond=0)
        latest = next(CronSim(self.schedule, local + timedelta(seconds=1), reverse=True))
        since = (now - length).astimezone(zone).replace(microsecond=0) - timedelta(seconds=1)
        first = next(CronSim(self.schedule, since))
        for opened in (latest.astimezone(UTC), first.astimezone(UTC)):
            if opened <= now < opened + length:  # elapsed time, in UTC: not wall-clock
                ends.append(opened + length)
        return max(ends, default=None)


def window_problem(window: MaintenanceWindow) -> tuple[str, str] | None:
    """What only evaluating a window finds (the schema checks the shape): a cron expression
    whose values are out of range, a time zone that does not exist. (field, message) or None.
    """
    if window.schedule is not None:
        problem = cron_problem(window.schedule)
        if problem is not None:
            return "schedule", problem
        problem = time_zone_problem(window.zone)
        if problem is not None:
            return "timeZone", problem
    return None


def maintenance_problem(spec: MaintenanceSpec | None) -> tuple[str, str] | None:
    """The first window's problem, its field named as in the spec, or None."""
    for index, window in enumerate(spec.windows if spec is not None else ()):
        found = window_problem(window)
        if found is not None:
            return f"spec.maintenance.windows[{index}].{found[0]}", found[1]
    return None


class MaintenanceSpec(ApiModel):
    """When the target is expected to fail: probing goes on, the state shows Maintenance."""

    windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        max_length=MAX_WINDOWS,
        description="Recurring or one-off windows; the monitor is in maintenance while any is "
        "open.",
    )


def maintenance_until(
    spec: MaintenanceSpec | None, annotation: datetime | None, now: datetime
) -> datetime | None:
    """When the maintenance ``now`` is in ends (the latest end of the windows open now, the
    annotation's time included), or None when ``now`` is outside every window."""
    ends = [annotation] if annotation is not None and now < annotation else []
    for window in spec.windows if spec is not None else ():
        until = window.open_until(now)
        if until is not None:
            ends.append(until)
    return max(ends, default=None)


def parse_maintenance_annotation(value: str | None) -> datetime | None:
    """The annotation's time, or None when absent or not an RFC 3339 time with an offset."""
    if value is None or len(value) > 64:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
