"""Text from the network made safe for terminals, log lines and API objects, and bounded.

A target controls its reply, its certificate's names and part of every error text. Printed raw,
an ESC starts a terminal escape sequence, a CR or LF forges a log line ("Normal TargetUp
prod/payments-db"), a bidi override or a zero-width character hides or reorders text; stored
unbounded, a long name makes the API server refuse every status write (422). Every such string
goes through :func:`printable` once, before it reaches a result; the sinks (the CLI table, the
standalone event lines) apply it again, which changes nothing in text that is already escaped.
"""

from __future__ import annotations

from collections.abc import Iterable

# Marks a cut string and the last entry of a cut list. ASCII, so it prints in any locale.
TRUNCATED = "..."

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str, ascii_only: bool) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    if ascii_only:
        if char == "\\":
            return "\\\\"
        if " " <= char < "\x7f":
            return char
    elif char.isprintable():
        # isprintable() is False for every control (C0, C1, DEL), format character (bidi
        # overrides and isolates, zero-width joiners, tags), line and paragraph separator,
        # surrogate, private-use and unassigned code point, and every space but U+0020.
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(
    text: str, limit: int | None = None, *, ascii_only: bool = False, marker: str = TRUNCATED
) -> str:
    r"""``text`` with every invisible or line-breaking character escaped, at most ``limit`` long.

    Escapes are ``\n \r \t``, ``\xHH``, ``\uHHHH`` and ``\UHHHHHHHH``. ``ascii_only`` escapes
    everything outside printable ASCII, and the backslash as ``\\`` so every escape is
    unambiguous: for raw bytes decoded as Latin-1 (a reply, a DNS name) where the exact bytes
    matter. Otherwise printable Unicode is kept (a subject may be written in any script). A cut
    never splits an escape and ends with ``marker``; the work is bounded by ``limit`` whatever
    the length of ``text``.
    """
    if (limit is None or len(text) <= limit) and _already_printable(text, ascii_only):
        return text  # the common case, decided at C speed
    if limit is not None:
        text = text[: limit + 1]  # every character yields at least one: enough to know if cut
    pieces: list[str] = []
    length = 0
    for char in text:
        piece = _escape(char, ascii_only)
        if limit is not None and length + len(piece) > limit:
            return _cut(pieces, length, limit, marker)
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces)


def _already_printable(text: str, ascii_only: bool) -> bool:
    if ascii_only:
        return text.isascii() and text.isprintable() and "\\" not in text
    return text.isprintable()


def _cut(pieces: list[str], length: int, limit: int, marker: str) -> str:
    marker = marker[:limit]
    while pieces and length + len(marker) > limit:
        length -= len(pieces.pop())
    return "".join(pieces) + marker


def printable_list(
    items: Iterable[str], max_items: int, item_limit: int, *, ascii_only: bool = False
) -> list[str]:
    """Each item made :func:`printable` within ``item_limit``, and at most ``max_items`` of them.

    When there are more, the last entry says how many were left out (``... 968 more``), so a
    reader never mistakes a cut list for the whole one.
    """
    out: list[str] = []
    extra = 0
    for item in items:
        if len(out) < max_items:
            out.append(printable(item, item_limit, ascii_only=ascii_only))
        else:
            extra += 1
    if extra:
        extra += 1
        out[-1] = printable(f"{TRUNCATED} {extra} more", item_limit)
    return out
