"""Duration strings as users write them (``500ms``, ``10s``, ``1m30s``, ``2h``, ``14d``).

The accepted grammar is deliberately the intersection of what humans expect and what the API
server's CEL ``duration()`` understands: Go-style sequences of ``ms``/``s``/``m``/``h``, or a
whole number of days on its own (``14d``), which the CEL rules read as days. Allowing
``1d12h`` would need a CEL parser of our own, so it is refused with a clear message instead.
"""

from __future__ import annotations

import re

GO_DURATION_PATTERN = r"([0-9]+(\.[0-9]+)?(ms|s|m|h))+"
DAYS_PATTERN = r"[0-9]+d"
DURATION_PATTERN = rf"^({GO_DURATION_PATTERN}|{DAYS_PATTERN})$"
DURATION_MAX_LENGTH = 32

_DURATION_RE = re.compile(DURATION_PATTERN)
_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DurationError(ValueError):
    """A string that is not a duration in our grammar."""


def parse_duration(text: str) -> float:
    """Return the duration in seconds, or raise :class:`DurationError` with a usable message."""
    if len(text) > DURATION_MAX_LENGTH or not _DURATION_RE.match(text):
        raise DurationError(
            f"invalid duration {text!r}: use a number with a unit ms, s, m or h "
            "(e.g. 500ms, 10s, 1m30s, 2h) or whole days alone (e.g. 14d)"
        )
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in _PART_RE.findall(text))


def format_duration(seconds: float) -> str:
    """Render seconds compactly for humans (tables, messages); not necessarily round-trippable."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


def cel_milliseconds(field: str) -> str:
    """A CEL expression for the duration string at ``field`` in whole milliseconds.

    CEL's ``duration()`` has no day unit, so ``14d`` is read as a number of days instead. Plain
    integer arithmetic keeps the API server's cost estimate small; rewriting ``14d`` into a
    ``336h`` string first is estimated a hundred times over the budget.
    """
    return (
        f"({field}.endsWith('d') ? int({field}.substring(0, size({field}) - 1)) * 86400000"
        f" : duration({field}).getMilliseconds())"
    )
