"""Assertions on the reply, compiled once per spec and evaluated incrementally while reading.

The engine reads only as long as some assertion is still undecided, so each check answers two
questions about the bytes so far: is the outcome already fixed, and what is it.

Regular expressions are RE2 (see :mod:`tcpmonitor.api.regex`): one search is linear in the
reply, and :class:`ReplyDecider` keeps the searches of one probe linear in the bytes read.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api import Assertion, AssertionOutcome, AssertionSource, Comparison, parse_duration
from ..api.regex import Regex, RegexError, compile_regex

# Checking the whole reply again on every read would make a target that trickles one byte per
# read cost O(n^2). Each byte read pays for CREDIT_PER_BYTE bytes of checking, plus one
# full-size reply's worth up front so short replies are checked on every read: the checks of
# one probe then scan at most CREDIT_PER_BYTE * n + FREE_CHECKED_BYTES bytes. A read that cannot
# be paid for yet waits for more data or the end of the read (close, cap, timeout), which
# evaluates the final outcome anyway.
CREDIT_PER_BYTE = 4
FREE_CHECKED_BYTES = 64 * 1024


class AssertionCompileError(ValueError):
    """An assertion that cannot be evaluated (a regular expression that does not compile)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class DataCheck:
    """A ResponseData assertion, ready to run against the text received so far."""

    assertion: Assertion
    pattern: Regex | None

    def outcome(self, text: str, final: bool) -> bool | None:
        """True/False once decided; None while more data could still change the answer."""
        c = self.assertion.comparison
        target = self.assertion.target or ""
        if c is Comparison.CONTAINS:
            return True if target in text else (False if final else None)
        if c is Comparison.NOT_CONTAINS:
            return False if target in text else (True if final else None)
        if c in (Comparison.MATCHES, Comparison.NOT_MATCHES):
            assert self.pattern is not None
            found = self.pattern.search(text) is not None
            wanted = c is Comparison.MATCHES
            if found:
                return wanted
            return (not wanted) if final else None
        if c in (Comparison.EQUALS, Comparison.NOT_EQUALS):
            # Equal once the reply is exactly as long as the target; a reply that has
            # diverged from the target can never become equal again.
            equal: bool | None
            if text == target:
                equal = True
            elif target.startswith(text) and not final:
                equal = None
            else:
                equal = False
            if equal is None:
                return None
            return equal if c is Comparison.EQUALS else not equal
        if c is Comparison.IS_EMPTY:
            return False if text else (True if final else None)
        if c is Comparison.NOT_EMPTY:
            return True if text else (False if final else None)
        raise AssertionError(f"not a ResponseData comparison: {c}")


@dataclass(frozen=True)
class TimeCheck:
    """A ResponseTime assertion against the total probe time."""

    assertion: Assertion
    limit_ms: float

    def passed(self, total_ms: float) -> bool:
        if self.assertion.comparison is Comparison.LESS_THAN:
            return total_ms < self.limit_ms
        return total_ms > self.limit_ms


def compile_assertions(
    assertions: tuple[Assertion, ...],
) -> tuple[tuple[DataCheck, ...], tuple[TimeCheck, ...]]:
    """Split and prepare assertions; raise AssertionCompileError for an unusable one."""
    data: list[DataCheck] = []
    time: list[TimeCheck] = []
    for index, a in enumerate(assertions):
        if a.source is AssertionSource.RESPONSE_TIME:
            time.append(TimeCheck(a, parse_duration(a.target or "0s") * 1000))
            continue
        pattern = None
        if a.comparison in (Comparison.MATCHES, Comparison.NOT_MATCHES):
            try:
                pattern = compile_regex(a.target or "")
            except RegexError as exc:
                raise AssertionCompileError(index, str(exc)) from None
        data.append(DataCheck(a, pattern))
    return tuple(data), tuple(time)


@dataclass
class ReplyDecider:
    """Whether every data check is decided, asked after each read of one probe.

    Checks the reply only when the bytes read so far have paid for it (see CREDIT_PER_BYTE);
    until then the answer is "not yet", which only means: keep reading.
    """

    checks: tuple[DataCheck, ...]
    evaluations: int = 0
    checked_bytes: int = 0
    _credit: int = FREE_CHECKED_BYTES
    _seen: int = 0
    _decided: bool = False

    def all_decided(self, received: bytes | bytearray) -> bool:
        size = len(received)
        if size == self._seen and self.evaluations:
            return self._decided  # nothing new: the answer cannot have changed
        self._credit += (size - self._seen) * CREDIT_PER_BYTE
        self._seen = size
        if size > self._credit:
            return False
        self._credit -= size
        self.evaluations += 1
        self.checked_bytes += size
        text = received.decode("utf-8", "replace")
        self._decided = all(c.outcome(text, final=False) is not None for c in self.checks)
        return self._decided


def data_outcome(check: DataCheck, actual: str, passed: bool) -> AssertionOutcome:
    """``actual``: the excerpt of the reply (redacted, see :mod:`.excerpt`)."""
    return AssertionOutcome.model_construct(
        source=check.assertion.source,
        comparison=check.assertion.comparison,
        target=check.assertion.target,
        actual=actual,
        passed=passed,
    )


def time_outcome(check: TimeCheck, total_ms: float) -> AssertionOutcome:
    return AssertionOutcome.model_construct(
        source=check.assertion.source,
        comparison=check.assertion.comparison,
        target=check.assertion.target,
        actual=f"{total_ms:.1f}ms",
        passed=check.passed(total_ms),
    )
