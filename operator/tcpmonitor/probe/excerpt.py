"""Printable excerpts of raw bytes, safe to put in a terminal, a log line or an API object."""

from __future__ import annotations

from ..api.printable import printable
from ..api.result import MAX_EXCERPT


def printable_excerpt(data: bytes, limit: int = MAX_EXCERPT) -> str:
    """Escape non-printable bytes (``\\n``, ``\\xHH``) and cut to at most ``limit`` characters.

    UTF-8 text beyond ASCII is escaped too: an excerpt is for diagnosis, where seeing the exact
    bytes matters more than pretty text, and it keeps the length bound exact. No cut marker:
    an excerpt is the start of the reply by definition, and ``bytes`` says how long it was.
    """
    return printable(data[:limit].decode("latin-1"), limit, ascii_only=True, marker="")
