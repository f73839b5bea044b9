"""Which runner probes which monitor: rendezvous (highest-random-weight) hashing.

Every runner of a location computes the same owner for a monitor from the same member list,
with no coordination beyond the list itself, and adding or removing one of N runners moves only
the monitors that runner wins or held (about 1/N of them). Pure functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


def weight(key: str, member: str) -> int:
    """A stable pseudo-random weight; blake2b because hash() is salted per process."""
    digest = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, members: Sequence[str]) -> str | None:
    """The member that probes ``key``; None when there is no member."""
    if not members:
        return None
    return max(members, key=lambda member: (weight(key, member), member))


@dataclass(frozen=True)
class Membership:
    """One runner's Lease, as read from the API server."""

    holder: str
    location: str
    renewed: datetime
    duration: timedelta

    def alive(self, now: datetime) -> bool:
        return self.renewed + self.duration > now


def live_members(leases: Iterable[Membership], location: str, now: datetime) -> list[str]:
    """Sorted holders of unexpired Leases in ``location``."""
    return sorted({m.holder for m in leases if m.location == location and m.alive(now)})
