"""Chain verdicts under insecureSkipVerify, remembered per presented chain.

Such a monitor handshakes without verification, so the chain verdict needs a second connection
with the trusting context. The verdict depends only on the chain, the trust store and the time,
so it is remembered for the same chain and context: a monitor probing every 30 seconds opens
that second connection about once an hour, not every probe. Bounded in entries and in age, and
never kept past the moment the first certificate of the chain expires.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from dataclasses import dataclass

MAX_ENTRIES = 4096
MAX_AGE = 3600.0


@dataclass(frozen=True)
class TrustVerdict:
    """Whether the chain verifies against the trust store; None when it could not be checked."""

    trusted: bool | None
    reason: str | None = None


_Key = tuple[int, tuple[str, ...]]


class TrustCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE) -> None:
        self._max_entries = max_entries
        self._max_age = max_age
        # key -> (context, verdict, valid until, wall-clock seconds); the context is kept to
        # compare by identity, since an id() can be reused once a context is gone.
        self._entries: OrderedDict[_Key, tuple[ssl.SSLContext, TrustVerdict, float]] = OrderedDict()

    def get(
        self, context: ssl.SSLContext, chain: tuple[str, ...], now: float
    ) -> TrustVerdict | None:
        key = (id(context), chain)
        entry = self._entries.get(key)
        if entry is None or entry[0] is not context or entry[2] <= now:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(
        self,
        context: ssl.SSLContext,
        chain: tuple[str, ...],
        verdict: TrustVerdict,
        now: float,
        expires: float | None,
    ) -> None:
        until = now + self._max_age
        if expires is not None:
            until = min(until, expires)
        self._entries[(id(context), chain)] = (context, verdict, until)
        self._entries.move_to_end((id(context), chain))
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


TRUST_CACHE = TrustCache()
