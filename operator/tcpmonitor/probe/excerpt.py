"""Printable excerpts of raw bytes, safe to put in a terminal, a log line or an API object,
with the bytes of a Secret the probe sent hidden.

A payload read from a Secret goes to the target, and a target that repeats what it got (an
echo service, a server that quotes the command it refuses: ``-ERR unknown command 'hunter2'``,
an HTTP 400 page with the request line) would hand the Secret to whoever reads the monitor's
status, which is not who may read the Secret. So every string built from received bytes (the
response excerpt, an assertion's ``actual``, a failure message quoting the target, a protocol's
detail) is redacted on the raw bytes, before escaping: each run of at least
:data:`MIN_REDACTED` bytes that occurs anywhere inside a secret becomes :data:`REDACTED`.
Runs, not only whole occurrences: a target that repeats a part (one token of the payload, the
payload cut by its own buffer or by the excerpt's length) gives nothing away either. A run
shorter than :data:`MIN_REDACTED` is shown: hiding every byte or pair of bytes that also occurs
in the secret would hide most of any reply. The price of runs: a reply that repeats the
protocol words of a secret payload (``HTTP/1.1``) is redacted there too, since nothing tells
which part of a Secret is the secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from ..api.printable import printable
from ..api.result import MAX_EXCERPT

REDACTED = "[REDACTED]"
MIN_REDACTED = 4

_S = TypeVar("_S", bytes, str)


def _runs(data: _S, secrets: Sequence[_S]) -> list[tuple[int, int]]:
    """The maximal runs ``[start, end)`` of ``data``, at least MIN_REDACTED long, that occur
    inside one of ``secrets``, merged where they touch or overlap.

    One substring test per start position and one per byte a run grows by: about 2n tests,
    each a C search through the secrets. For an excerpt n is about 260 bytes, which costs
    about 0.2 ms for a payload of a few kilobytes and 150 ms for one of a megabyte (the most
    a Secret holds) when the reply shares nothing with it.
    """
    runs: list[tuple[int, int]] = []
    end = 0  # where the runs found so far end
    size = len(data)
    for start in range(size - MIN_REDACTED + 1):
        stop = max(end, start + MIN_REDACTED)
        if stop > size or not any(data[start:stop] in s for s in secrets):
            continue
        while stop < size and any(data[start : stop + 1] in s for s in secrets):
            stop += 1
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], stop))
        else:
            runs.append((start, stop))
        end = max(end, stop)
    return runs


def _text_forms(secret: bytes) -> set[str]:
    """How the secret reads once decoded or escaped, for text already taken from bytes."""
    latin = secret.decode("latin-1")
    forms = {latin, printable(latin, ascii_only=True)}
    try:
        text = secret.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        forms |= {text, printable(text)}
    return forms


@dataclass(frozen=True)
class Redactor:
    """The Secret bytes a probe sends, to hide wherever received bytes are shown.

    Empty (and free) for every probe whose payload is written in the spec.
    """

    secrets: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, secrets: Iterable[bytes]) -> Redactor:
        kept = tuple(dict.fromkeys(s for s in secrets if len(s) >= MIN_REDACTED))
        # Without secrets, the shared empty one: every monitor's plan holds a redactor.
        return cls(kept) if kept else NO_SECRETS

    @cached_property
    def text_secrets(self) -> tuple[str, ...]:
        """The secrets as text: built on first use, since only a dialog's texts need them."""
        forms = {form for s in self.secrets for form in _text_forms(s)}
        return tuple(sorted(f for f in forms if len(f) >= MIN_REDACTED))

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def excerpt(self, data: bytes, limit: int = MAX_EXCERPT) -> str:
        """:func:`printable_excerpt` of ``data`` with the secret runs replaced."""
        if not self.secrets:
            return printable_excerpt(data, limit)
        # A few bytes past the cut decide whether a run that starts before it is long enough.
        window = data[: limit + MIN_REDACTED - 1]
        pieces: list[str] = []
        left = limit
        shown = 0
        for start, end in _runs(window, self.secrets):
            if start >= limit:
                break
            piece = printable_excerpt(data[shown:start], 4 * (start - shown))  # \xHH at most
            if len(piece) >= left:
                pieces.append(printable_excerpt(data[shown:start], left))
                return "".join(pieces)
            # Cut like the rest: "[REDA" at the very end still says something was hidden.
            pieces += [piece, REDACTED[: left - len(piece)]]
            left -= len(piece) + len(REDACTED)
            if left <= 0:
                return "".join(pieces)
            shown = end
        if shown < limit:
            pieces.append(printable_excerpt(data[shown:limit], left))
        return "".join(pieces)

    def text(self, text: str) -> str:
        """``text`` taken from received bytes (decoded or escaped) with the secret runs
        replaced; the caller bounds its length."""
        if not self.secrets:
            return text
        pieces: list[str] = []
        shown = 0
        for start, end in _runs(text, self.text_secrets):
            pieces.append(text[shown:start])
            pieces.append(REDACTED)
            shown = end
        pieces.append(text[shown:])
        return "".join(pieces)


NO_SECRETS = Redactor()


def printable_excerpt(data: bytes, limit: int = MAX_EXCERPT) -> str:
    """Escape non-printable bytes (``\\n``, ``\\xHH``) and cut to at most ``limit`` characters.

    UTF-8 text beyond ASCII is escaped too: an excerpt is for diagnosis, where seeing the exact
    bytes matters more than pretty text, and it keeps the length bound exact. No cut marker:
    an excerpt is the start of the reply by definition, and ``bytes`` says how long it was.
    """
    return printable(data[:limit].decode("latin-1"), limit, ascii_only=True, marker="")
