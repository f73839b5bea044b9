"""Assertions on the reply: RE2 regular expressions and the patterns refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tcpmonitor.api import Assertion, TcpMonitorSpec
from tcpmonitor.api.regex import REGEX_MAX_MEMORY, RegexError, compile_regex, regex_syntax_error
from tcpmonitor.probe import PlanError, compile_plan
from tcpmonitor.probe.assertions import AssertionCompileError, DataCheck, compile_assertions


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
        Assertion.model_validate(data("Matches", pattern))
    assert message in str(caught.value)


def test_escaped_or_quoted_c_is_not_the_any_byte_escape() -> None:
    assert regex_syntax_error(r"\\C") is None
    assert regex_syntax_error(r"\Qa\C\E") is None


def test_only_regex_comparisons_compile_the_target() -> None:
    Assertion.model_validate(data("Contains", "(?=x"))
    Assertion.model_validate(data("Equals", r"(a)\1"))


def test_a_program_over_the_memory_bound_is_refused_when_the_probe_is_compiled() -> None:
    pattern = r"\pL{1000}"
    assert regex_syntax_error(pattern) is None  # Go's regexp on the API server takes it
    with pytest.raises(RegexError) as caught:
        compile_regex(pattern)
    assert caught.value.too_large
    spec = TcpMonitorSpec.model_validate(
        {"host": "h", "port": 1, "assertions": [data("Contains", "x"), data("Matches", pattern)]}
    )
    with pytest.raises(PlanError) as plan_error:
        compile_plan(spec)
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
