"""Maintenance windows: which instants are inside, across daylight-saving changes; validation."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from tcpmonitor.api import TcpMonitorSpec
from tcpmonitor.api.maintenance import (
    MaintenanceSpec,
    MaintenanceWindow,
    maintenance_problem,
    maintenance_until,
    parse_maintenance_annotation,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


BERLIN_0230 = MaintenanceWindow(schedule="30 2 * * *", duration="1h", time_zone="Europe/Berlin")


@pytest.mark.parametrize(
    ("now", "until"),
    [
        # An ordinary night (CET, UTC+1): 02:30-03:30 local is 01:30-02:30 UTC.
        ("2026-01-10T01:29:59Z", None),
        ("2026-01-10T01:30:00Z", "2026-01-10T02:30:00+00:00"),
        ("2026-01-10T02:29:59Z", "2026-01-10T02:30:00+00:00"),
        ("2026-01-10T02:30:00Z", None),
        # Clocks go forward at 02:00 on 2026-03-29: 02:30 does not exist, the window opens at
        # the first minute after the gap (03:00 CEST = 01:00 UTC), like cron, for one hour.
        ("2026-03-29T00:59:00Z", None),
        ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00+00:00"),
        ("2026-03-29T02:00:00Z", None),
        # Summer (CEST, UTC+2).
        ("2026-07-01T00:30:00Z", "2026-07-01T01:30:00+00:00"),
        # Clocks go back at 03:00 on 2026-10-25: 02:30 happens twice, the window opens once
        # (the first, 00:30 UTC) and lasts one hour of elapsed time; the repeated 02:30 (01:30
        # UTC) opens nothing.
        ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00+00:00"),
        ("2026-10-25T01:29:00Z", "2026-10-25T01:30:00+00:00"),
        ("2026-10-25T01:45:00Z", None),
    ],
)
def test_a_recurring_window_in_a_zone_across_daylight_saving_changes(
    now: str, until: str | None
) -> None:
    found = BERLIN_0230.open_until(at(now))
    assert (found.isoformat() if found else None) == until


def test_a_duration_is_elapsed_time_across_the_change() -> None:
    # Opens 01:00 CEST on the night the clocks go back (23:00 UTC the day before): three hours
    # of elapsed time end at 02:00 UTC, though the wall clock then says 03:00, not 04:00.
    window = MaintenanceWindow(schedule="0 1 25 10 *", duration="3h", time_zone="Europe/Berlin")
    assert window.open_until(at("2026-10-25T01:59:00Z")) == at("2026-10-25T02:00:00Z")
    assert window.open_until(at("2026-10-25T02:00:00Z")) is None


def test_a_one_off_window_includes_its_start_and_not_its_end() -> None:
    window = MaintenanceWindow(start=at("2026-12-24T20:00:00Z"), end=at("2026-12-24T22:00:00Z"))
    assert window.open_until(at("2026-12-24T19:59:59Z")) is None
    assert window.open_until(at("2026-12-24T20:00:00Z")) == at("2026-12-24T22:00:00Z")
    assert window.open_until(at("2026-12-24T22:00:00Z")) is None


def test_overlapping_windows_and_the_annotation_end_at_the_latest() -> None:
    spec = MaintenanceSpec(
        windows=[
            MaintenanceWindow(start=at("2026-12-24T20:00:00Z"), end=at("2026-12-24T22:00:00Z")),
            MaintenanceWindow(schedule="0 21 * * *", duration="2h"),
        ]
    )
    now = at("2026-12-24T21:30:00Z")
    assert maintenance_until(spec, None, now) == at("2026-12-24T23:00:00Z")
    assert maintenance_until(spec, at("2026-12-25T06:00:00Z"), now) == at("2026-12-25T06:00:00Z")
    assert maintenance_until(None, at("2026-12-25T06:00:00Z"), now) == at("2026-12-25T06:00:00Z")
    assert maintenance_until(None, at("2026-12-24T21:00:00Z"), now) is None  # passed
    assert maintenance_until(spec, None, at("2026-12-25T12:00:00Z")) is None


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("2026-12-25T06:00:00Z", "2026-12-25T06:00:00+00:00"),
        ("2026-12-25T07:00:00+01:00", "2026-12-25T07:00:00+01:00"),
        ("2026-12-25T06:00:00", None),  # no offset: which zone?
        ("tomorrow", None),
        ("2" * 100, None),
        (None, None),
    ],
)
def test_the_annotation_takes_an_rfc3339_time_with_an_offset(
    value: str | None, parsed: str | None
) -> None:
    found = parse_maintenance_annotation(value)
    assert (found.isoformat() if found else None) == parsed


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"schedule": "0 3 * *", "duration": "1h"}, "should match pattern"),
        ({"schedule": "0 3 * * SUN"}, "schedule and duration go together"),
        ({"start": "2026-12-24T20:00:00Z"}, "start and end go together"),
        (
            {"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T19:00:00Z"},
            "end must be after start",
        ),
        ({}, "either recurring (schedule and duration) or one-off (start and end)"),
    ],
)
def test_invalid_windows_are_refused_with_a_clear_message(
    window: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        TcpMonitorSpec.model_validate(
            {"host": "db", "port": 5432, "maintenance": {"windows": [window]}}
        )
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("window", "field", "message"),
    [
        (
            {"schedule": "61 3 * * *", "duration": "1h"},
            "spec.maintenance.windows[1].schedule",
            "invalid cron expression '61 3 * * *': Bad minute",
        ),
        (
            {"schedule": "0 3 * * SUN", "duration": "1h", "timeZone": "Europe/Atlantis"},
            "spec.maintenance.windows[1].timeZone",
            "unknown time zone 'Europe/Atlantis': an IANA name such as Europe/Berlin or UTC",
        ),
    ],
)
def test_what_only_evaluating_a_window_finds_is_a_spec_problem_never_open(
    window: dict[str, str], field: str, message: str
) -> None:
    # The schema takes these (as the API server does); the spec check refuses them
    # (Ready=False InvalidSpec, `tcpmonitor validate`), and they never open.
    fine = {"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T22:00:00Z"}
    spec = MaintenanceSpec.model_validate({"windows": [fine, window]})
    assert maintenance_problem(spec) == (field, message)
    assert spec.windows[1].open_until(at("2026-12-27T03:30:00Z")) is None


def test_a_time_without_an_offset_is_utc_as_kubernetes_reads_it() -> None:
    window = MaintenanceWindow.model_validate(
        {"start": "2026-12-24T20:00:00", "end": "2026-12-24T22:00:00"}
    )
    assert window.open_until(at("2026-12-24T21:00:00Z")) == at("2026-12-24T22:00:00Z")


def test_at_most_sixteen_windows() -> None:
    window = {"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T22:00:00Z"}
    with pytest.raises(ValidationError):
        MaintenanceSpec.model_validate({"windows": [window] * 17})
    assert len(MaintenanceSpec.model_validate({"windows": [window] * 16}).windows) == 16
