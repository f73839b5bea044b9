"""Regular expressions in the RE2 dialect, the one CEL's ``matches()`` speaks on the API server.

RE2 matches in time linear in the input whatever the pattern, because it never backtracks; the
price is that it has no backreferences, lookaround or possessive repeats. A tenant's pattern
therefore cannot stall the event loop every other monitor shares, and the API server, the
offline validator and the probe agree on what a pattern means.

Two limits the API server does not share: a pattern whose compiled program exceeds
:data:`REGEX_MAX_MEMORY` is refused when the probe is compiled (``Ready=False``, and
``tcpmonitor validate``), not by the schema; and ``\\C`` (any byte), which RE2 knows and Go's
regexp does not, is refused everywhere so that both sides accept the same patterns.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol, cast

# Bounds the compiled program and its lazily built DFA, per pattern: up to 16 per monitor, and
# every monitor's live at once.
REGEX_MAX_MEMORY = 1 << 20

_TOO_LARGE = "pattern too large"
_SHOWN = 60


class Regex(Protocol):
    """A compiled pattern, as the probe uses it."""

    def search(self, text: str) -> object | None: ...


class RegexError(ValueError):
    """A pattern RE2 refuses; ``too_large`` when only the memory bound refuses it."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= _SHOWN else pattern[:_SHOWN] + "...")


def _any_byte_escape(pattern: str) -> bool:
    r"""Whether ``pattern`` uses ``\C`` outside ``\Q...\E``."""
    i, quoted = 0, False
    while i < len(pattern) - 1:
        if pattern[i] == "\\":
            escape = pattern[i + 1]
            if quoted:
                quoted = escape != "E"
            elif escape == "Q":
                quoted = True
            elif escape == "C":
                return True
            i += 2
        else:
            i += 1
    return False


@cache
def _re2() -> tuple[Any, Any]:
    """The re2 module and the options every pattern is compiled with.

    Imported by the first pattern (about 2.4 MB with its C++ library): a process whose
    monitors have no Matches assertion or step pattern never loads it.
    """
    import re2  # noqa: PLC0415 - the first pattern only

    options = re2.Options()
    options.max_mem = REGEX_MAX_MEMORY
    options.never_capture = True  # only "is there a match" is asked; no groups to track
    options.log_errors = False  # the error is returned to the user, not logged by the C++ side
    return re2, options


def compile_regex(pattern: str) -> Regex:
    """The pattern compiled for searching; raises :class:`RegexError` with a one-line reason."""
    if _any_byte_escape(pattern):
        raise RegexError(
            f"{_shown(pattern)} is not a valid RE2 regular expression: \\C (any byte) is not "
            "supported"
        )
    re2, options = _re2()
    try:
        return cast(Regex, re2.compile(pattern, options))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        if str(reason).startswith(_TOO_LARGE):
            raise RegexError(
                f"{_shown(pattern)} is too large: its compiled RE2 program exceeds "
                f"{REGEX_MAX_MEMORY >> 20} MiB",
                too_large=True,
            ) from None
        raise RegexError(
            f"{_shown(pattern)} is not a valid RE2 regular expression: {reason}"
        ) from None


def regex_syntax_error(pattern: str) -> str | None:
    """Why the API server's CEL ``matches()`` would refuse ``pattern``, or None.

    A pattern refused only for its size is left to the probe's compilation, because the API
    server (Go's regexp) accepts it: offline validation must not be stricter than the cluster.
    """
    try:
        compile_regex(pattern)
    except RegexError as exc:
        return None if exc.too_large else str(exc)
    return None
