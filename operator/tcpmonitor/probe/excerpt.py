"""Printable excerpts of raw bytes, safe to put in a terminal, a log line or an API object."""

from __future__ import annotations

from ..api.result import MAX_EXCERPT

_ESCAPES = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x5C: "\\\\"}
_TABLE = [_ESCAPES.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in range(256)]


def printable_excerpt(data: bytes, limit: int = MAX_EXCERPT) -> str:
    """Escape non-printable bytes (``\\n``, ``\\xHH``) and cut to at most ``limit`` characters.

    UTF-8 text beyond ASCII is escaped too: an excerpt is for diagnosis, where seeing the exact
    bytes matters more than pretty text, and it keeps the length bound exact.
    """
    out: list[str] = []
    length = 0
    for b in data[:limit]:
        piece = _TABLE[b]
        if length + len(piece) > limit:
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)
