"""printable(): the one escaping of text from the network, for terminals, logs and the API."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tcpmonitor.api.printable import TRUNCATED, printable, printable_list
from tcpmonitor.probe.excerpt import printable_excerpt

# Everything that moves the cursor, ends a line, starts an escape sequence or hides text.
HIDING = (
    [chr(c) for c in range(0x20)]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + ["\u061c", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2028", "\u2029"]
    + [chr(c) for c in range(0x202A, 0x202F)]  # LRE RLE PDF LRO RLO
    + [chr(c) for c in range(0x2066, 0x206A)]  # LRI RLI FSI PDI
    + ["\ufeff", "\U000e0041", "\udce9"]  # BOM, a tag character, a lone surrogate
)
ESCAPE = r"\\(?:[nrt\\]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})"


def test_every_control_format_and_separator_character_is_escaped() -> None:
    for char in HIDING:
        out = printable(f"a{char}b")
        assert out.isprintable() and out.isascii(), (hex(ord(char)), out)
        assert re.fullmatch(f"a{ESCAPE}b", out), (hex(ord(char)), out)


def test_a_forged_log_line_stays_on_one_line() -> None:
    forged = "db down\r\n2026-01-01T00:00:00Z Normal TargetUp prod/payments-db: ok\x1b[2K"
    out = printable(forged)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert out.startswith("db down\\r\\n2026")


def test_printable_unicode_is_kept_in_text_and_escaped_in_bytes_mode() -> None:
    assert printable("CN=Zürich Straße,O=日本") == "CN=Zürich Straße,O=日本"
    assert printable("b\\x", ascii_only=True) == "b\\\\x"
    assert printable("bad-\xe9name", ascii_only=True) == "bad-\\xe9name"


def test_a_cut_never_splits_an_escape_and_ends_with_the_marker() -> None:
    assert printable("abcdef", 5) == "ab" + TRUNCATED
    assert printable("abcde", 5) == "abcde"
    assert printable("ab\x1bcd", 6) == "ab" + TRUNCATED
    assert printable("x" * 10_000_000, 253) == "x" * 250 + TRUNCATED


@given(st.text(), st.integers(min_value=3, max_value=300))
def test_bounded_printable_and_idempotent(text: str, limit: int) -> None:
    out = printable(text, limit)
    assert len(out) <= limit
    assert out.isprintable()
    assert printable(out) == out
    if len(text) <= limit and text.isprintable():
        assert out == text


@given(st.lists(st.text(max_size=400), max_size=60))
def test_a_list_is_bounded_in_entries_and_length_and_says_what_it_left_out(
    items: list[str],
) -> None:
    out = printable_list(items, 32, 253, ascii_only=True)
    assert len(out) == min(len(items), 32)
    assert all(len(i) <= 253 and i.isprintable() and i.isascii() for i in out)
    if len(items) > 32:
        assert out[-1] == f"{TRUNCATED} {len(items) - 31} more"


def test_excerpt_escapes_bytes_as_before() -> None:
    assert printable_excerpt(b"220 ok\r\n\x00\xff\\") == "220 ok\\r\\n\\x00\\xff\\\\"
    assert len(printable_excerpt(b"\x1b" * 1000)) == 256
    assert printable_excerpt(b"\x1b" * 1000).endswith("\\x1b")
