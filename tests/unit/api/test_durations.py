from __future__ import annotations

import pytest

from tcpmonitor.api import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10),
        ("1m30s", 90),
        ("2h", 7200),
        ("14d", 14 * 86400),
        ("1.5s", 1.5),
        ("1h1m1s1ms", 3661.001),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1d12h", "-1s", "1 s", "1us", "10S", "1e3s"])
def test_bad_durations_are_refused_with_an_example_in_the_message(text: str) -> None:
    with pytest.raises(DurationError, match=r"e\.g\. 500ms"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0123, "12ms"), (1.5, "1.5s"), (90, "1m30s"), (90000, "1d1h")]
)
def test_format_duration_for_humans(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
