"""The overall state from per-location states and minFailedLocations."""

from __future__ import annotations

from tcpmonitor.api import LocationStatus, MonitorState
from tcpmonitor.reporting.quorum import aggregate

UP, DOWN, DEG, UNK = (
    MonitorState.UP,
    MonitorState.DOWN,
    MonitorState.DEGRADED,
    MonitorState.UNKNOWN,
)


def entries(**states: MonitorState) -> list[LocationStatus]:
    return [
        LocationStatus(name=n, state=s, error_code="CONNECT_TIMEOUT" if s is DOWN else None)
        for n, s in states.items()
    ]


def test_down_needs_the_quorum() -> None:
    locs = ["eu", "us", "ap"]
    assert aggregate(locs, 2, entries(eu=DOWN, us=UP, ap=UP)).state is DEG
    verdict = aggregate(locs, 2, entries(eu=DOWN, us=DOWN, ap=UP))
    assert verdict.state is DOWN and verdict.error_code == "CONNECT_TIMEOUT"
    assert "Down in 2 of 3 locations (quorum 2)" in verdict.message
    assert "eu: CONNECT_TIMEOUT" in verdict.message and "us: CONNECT_TIMEOUT" in verdict.message
    assert "ap" not in verdict.message


def test_default_quorum_of_one() -> None:
    assert aggregate(["default"], 1, entries(default=DOWN)).state is DOWN
    assert aggregate(["default"], 1, entries(default=UP)).state is UP


def test_degraded_anywhere_is_degraded() -> None:
    assert aggregate(["eu", "us"], 1, entries(eu=UP, us=DEG)).state is DEG


def test_no_result_is_unknown_and_a_location_still_waiting_shows_in_the_count() -> None:
    verdict = aggregate(["eu", "us"], 1, entries(eu=UNK))
    assert verdict.state is UNK and verdict.message == "no location has reported yet"
    partial = aggregate(["eu", "us"], 1, entries(eu=UP))
    assert partial.state is UP and partial.message == "Up in 1 of 2 locations"


def test_entries_of_locations_no_longer_wanted_are_ignored() -> None:
    assert aggregate(["eu"], 1, entries(eu=UP, old=DOWN)).state is UP


def test_locations_without_a_live_runner_are_reported() -> None:
    verdict = aggregate(["eu", "us"], 1, entries(eu=UP), live_locations={"eu"})
    assert verdict.unavailable == ("us",)
    assert "no live runner in us" in verdict.message


def test_the_deciding_error_code_is_the_first_down_locations_and_only_when_down() -> None:
    locs = ["eu", "us"]
    down = [
        LocationStatus(name="eu", state=UP),
        LocationStatus(name="us", state=DOWN, error_code="CONNECTION_REFUSED"),
    ]
    assert aggregate(locs, 1, down).error_code == "CONNECTION_REFUSED"
    assert aggregate(locs, 2, down).error_code is None  # below the quorum: Degraded
