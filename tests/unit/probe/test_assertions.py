"""Assertions on the reply: RE2 regular expressions, refused patterns, and bounded re-checking."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from tcpmonitor.api import Assertion, TcpMonitorSpec, Verdict
from tcpmonitor.api.regex import REGEX_MAX_MEMORY, RegexError, compile_regex, regex_syntax_error
from tcpmonitor.probe import PlanError, compile_plan
from tcpmonitor.probe import engine as engine_module
from tcpmonitor.probe.assertions import (
    CREDIT_PER_BYTE,
    FREE_CHECKED_BYTES,
    AssertionCompileError,
    DataCheck,
    ReplyDecider,
    compile_assertions,
)

from ..probing import probe
from ..servers import serve


def data(comparison: str, target: str) -> dict[str, str]:
    return {"source": "ResponseData", "comparison": comparison, "target": target}


def check(comparison: str, target: str) -> DataCheck:
    (compiled,), _ = compile_assertions((Assertion.model_validate(data(comparison, target)),))
    return compiled


def outcome(comparison: str, target: str, reply: bytes, final: bool = True) -> bool | None:
    return check(comparison, target).outcome(reply.decode("utf-8", "replace"), final)


# --- RE2 semantics on the reply decoded as UTF-8 ---------------------------------------------


def test_nested_repeat_is_decided_without_backtracking() -> None:
    # Python's re needs about 2**40 steps here; RE2 is linear.
    reply = b"a" * 40 + b"!"
    assert outcome("Matches", "(a+)+$", reply) is False
    assert outcome("Matches", "(a+)+$", reply, final=False) is None
    assert outcome("NotMatches", "(a+)+$", reply) is True
    assert outcome("Matches", "(a+)+$", b"a" * 40) is True


def test_dollar_is_the_end_of_the_reply_unless_multiline() -> None:
    assert outcome("Matches", "OK$", b"OK\n") is False  # Python's re would match before \n
    assert outcome("Matches", r"(?m)^OK\r?$", b"220 hi\r\nOK\r\nbye") is True
    assert outcome("Matches", r"OK\z", b"OK") is True


def test_search_is_unanchored_and_unicode_aware() -> None:
    assert outcome("Matches", r"\+PONG", b"junk +PONG\r\n") is True
    assert outcome("Matches", "^é+$", "ééé".encode()) is True
    assert outcome("Matches", r"(?i)esmtp", b"220 mx ESMTP") is True


def test_invalid_utf8_is_matched_as_the_replacement_character() -> None:
    assert outcome("Matches", "^a.b$", b"a\xffb") is True
    assert outcome("Matches", "^a\ufffdb$", b"a\xffb") is True


def test_groups_are_accepted_though_never_captured() -> None:
    assert outcome("Matches", r"^(?P<code>2\d\d) (\w+)", b"250 ok") is True


# --- patterns RE2 cannot compile ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=x)", "invalid perl operator: (?="),
        ("(?<!a)b", "invalid perl operator: (?<!"),
        (r"(a)\1", r"invalid escape sequence: \1"),
        ("a*+", "bad repetition operator: *+"),
        ("(unclosed", "missing ): (unclosed"),
        (r"x\C", r"\C (any byte) is not supported"),
    ],
)
def test_unsupported_syntax_is_refused_with_a_one_line_reason(pattern: str, reason: str) -> None:
    message = regex_syntax_error(pattern)
    assert message == f"{pattern!r} is not a valid RE2 regular expression: {reason}"
    with pytest.raises(ValidationError) as caught:
        spec(data("Contains", "x"), data("Matches", pattern))
    (error,) = caught.value.errors()
    assert error["msg"] == message
    assert error["ctx"]["field_path"] == ".assertions[1].target"


def spec(*assertions: dict[str, str]) -> TcpMonitorSpec:
    return TcpMonitorSpec.model_validate({"host": "h", "port": 1, "assertions": assertions})


def test_braces_in_a_refused_pattern_are_quoted_as_they_are() -> None:
    with pytest.raises(ValidationError) as caught:
        spec(data("Matches", "a{2}{3}{field_path}"))
    assert "'a{2}{3}{field_path}' is not a valid RE2" in caught.value.errors()[0]["msg"]


def test_escaped_or_quoted_c_is_not_the_any_byte_escape() -> None:
    assert regex_syntax_error(r"\\C") is None
    assert regex_syntax_error(r"\Qa\C\E") is None


def test_only_regex_comparisons_compile_the_target() -> None:
    spec(data("Contains", "(?=x"), data("Equals", r"(a)\1"))


def test_a_program_over_the_memory_bound_is_refused_when_the_probe_is_compiled() -> None:
    pattern = r"\pL{1000}"
    assert regex_syntax_error(pattern) is None  # Go's regexp on the API server takes it
    with pytest.raises(RegexError) as caught:
        compile_regex(pattern)
    assert caught.value.too_large
    with pytest.raises(PlanError) as plan_error:
        compile_plan(spec(data("Contains", "x"), data("Matches", pattern)))
    assert plan_error.value.field == "spec.assertions[1].target"
    assert plan_error.value.message == (
        f"'\\\\pL{{1000}}' is too large: its compiled RE2 program exceeds "
        f"{REGEX_MAX_MEMORY >> 20} MiB"
    )


def test_compile_assertions_names_the_index_of_the_bad_pattern() -> None:
    bad = Assertion.model_construct(source="ResponseData", comparison="Matches", target="(?=x)")
    good = Assertion.model_validate(data("Contains", "x"))
    with pytest.raises(AssertionCompileError) as caught:
        compile_assertions((good, bad))
    assert caught.value.index == 1
    assert "invalid perl operator" in str(caught.value)


# --- bounded re-checking while reading ---------------------------------------------------------


class CountingCheck(DataCheck):
    """A Matches check that counts the characters it was asked to search."""

    searched: int = 0

    def outcome(self, text: str, final: bool) -> bool | None:
        CountingCheck.searched += len(text)
        return super().outcome(text, final)


def counting(comparison: str, target: str) -> DataCheck:
    compiled = check(comparison, target)
    return CountingCheck(compiled.assertion, compiled.pattern)


def test_a_reply_trickled_one_byte_per_read_is_checked_in_linear_work() -> None:
    CountingCheck.searched = 0
    decider = ReplyDecider((counting("Matches", "END"),))
    reply = bytearray()
    size = 64 * 1024
    for _ in range(size):
        reply += b"x"
        assert not decider.all_decided(reply)
    bound = CREDIT_PER_BYTE * size + FREE_CHECKED_BYTES
    assert decider.checked_bytes <= bound
    assert CountingCheck.searched == decider.checked_bytes
    # Checking on every read would have been size * (size + 1) / 2 bytes, over 2 GiB.
    assert decider.evaluations < 600


def test_a_decisive_byte_is_seen_once_the_reply_grows_by_a_third() -> None:
    decider = ReplyDecider((check("Matches", "END"),))
    reply = bytearray(b"x" * 40_000)
    for _ in range(40_000):
        reply += b"y"
        decider.all_decided(reply)
    reply += b"END"
    decided_at = None
    for _ in range(40_000):
        if decider.all_decided(reply):
            decided_at = len(reply)
            break
        reply += b"z"
    assert decided_at is not None
    # Each byte pays for CREDIT_PER_BYTE bytes of checking: the next check of a reply of
    # length L is paid for once it has grown by L / (CREDIT_PER_BYTE - 1).
    assert decided_at <= 80_003 * CREDIT_PER_BYTE / (CREDIT_PER_BYTE - 1) + 1


def test_segments_of_an_ordinary_reply_are_each_checked() -> None:
    decider = ReplyDecider((check("Contains", "</html>"),))
    reply = bytearray()
    for _ in range(11):
        reply += b"x" * 1460
        assert not decider.all_decided(reply)
    reply += b"</html>"
    assert decider.all_decided(reply)
    assert decider.evaluations == 12


def test_asking_again_without_new_bytes_does_not_check_again() -> None:
    decider = ReplyDecider((check("NotContains", "x"),))
    assert not decider.all_decided(b"abc")
    assert not decider.all_decided(b"abc")
    assert decider.evaluations == 1


def test_the_probe_checks_a_trickling_reply_in_bounded_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deciders: list[ReplyDecider] = []

    class Recorded(ReplyDecider):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            deciders.append(self)

    monkeypatch.setattr(engine_module, "ReplyDecider", Recorded)
    size = 3000

    async def trickle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(size):
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"!")
        writer.write_eof()
        await asyncio.sleep(2)

    async def scenario() -> Any:
        async with serve(trickle) as port:
            # Undecided until the peer closes: a "b" could still come.
            return await probe(port, timeout="5s", assertions=[data("Matches", "(a+)+b")])

    result = asyncio.run(scenario())
    assert result.state is Verdict.DOWN, result
    assert result.response is not None and result.response.bytes == size + 1
    assert [a.passed for a in result.assertions] == [False]
    (decider,) = deciders
    assert decider.checked_bytes <= CREDIT_PER_BYTE * (size + 1) + FREE_CHECKED_BYTES
