"""Validation errors as people read them: one line naming file, document, field and rule.

Shared by the file loader (``validate``, ``probe -f``, ``run -f``) and the operator, which
reports a stored object's invalid spec on that object: pydantic's own messages quote regular
expressions and internal type names, which help nobody fix a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .durations import DURATION_PATTERN
from .spec import (
    BASE64_PATTERN,
    DATA_KEY_PATTERN,
    HOST_PATTERN,
    HOSTNAME_PATTERN,
    OBJECT_NAME_PATTERN,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one document."""

    file: str
    doc: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:doc {self.doc}" if self.doc else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


def _field_path(loc: tuple[int | str, ...], extra: str = "") -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out + extra


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "Required value",
}

# Pydantic would quote the regular expression; people need to be told the rule instead.
_PATTERN_MESSAGES = {
    DURATION_PATTERN: "invalid duration: use a number with ms, s, m or h (500ms, 10s, 1m30s, "
    "2h) or whole days alone (14d)",
    HOST_PATTERN: "must be a DNS name or an IP address (IPv6 without brackets)",
    OBJECT_NAME_PATTERN: "must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')",
    DATA_KEY_PATTERN: "may contain only letters, digits, '-', '_' and '.'",
    BASE64_PATTERN: "must be base64 (A-Z, a-z, 0-9, '+', '/', '=')",
    f"^{HOSTNAME_PATTERN}$": "must be a DNS name",
}


def _message(error: ErrorDetails) -> str:
    if error["type"] == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        return _PATTERN_MESSAGES.get(pattern, f"does not match {pattern}")
    return str(_MESSAGES.get(error["type"], error["msg"]))


def validation_problems(exc: ValidationError, file: str, doc: int) -> list[Problem]:
    problems = []
    for error in exc.errors():
        ctx = error.get("ctx") or {}
        path = _field_path(error["loc"], str(ctx.get("field_path", "")))
        message = _message(error)
        if error["type"] not in ("missing", "cross_field_rule") and "input" in error:
            shown = repr(error["input"])
            if len(shown) <= 60 and not isinstance(error["input"], dict):
                message = f"{message} (got {shown})"
        problems.append(Problem(file, doc, path, message))
    return problems
