"""What one namespace may use of a process's probing: how many monitors, how often, how many
probes at once. The platform's policy says it (``LimitsSource``); the runtime enforces it.

The limits come on top of the installation's settings (``RuntimeSettings``): a namespace's
minimum interval is the larger of the two, its concurrent probes the smaller of the two.
``NamespaceRoster`` decides which monitors a ``max_monitors`` limit lets through: the first N
in name order, so the answer does not depend on the order a watch or a restart delivers them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from ..policy.targets import NO_LIMITS, NamespaceLimits

__all__ = ["NO_LIMITS", "LimitsSource", "NamespaceLimits", "NamespaceRoster", "no_limits"]

# One type for limits: the target policy (policy/) computes them, the runtime enforces them.

# namespace -> its limits. Called on every probe-slot hand-out: must be cheap (a dict lookup,
# not a list of rules matched each time) and pure (no I/O).
LimitsSource = Callable[[str], NamespaceLimits]


def no_limits(namespace: str) -> NamespaceLimits:
    """The default source: nothing beyond the installation's settings."""
    return NO_LIMITS


class NamespaceRoster:
    """Each namespace's monitor names in name order; a monitor's rank there decides whether a
    ``max_monitors`` limit lets it through (rank < limit). O(log n) lookups, O(n) memmove
    inserts: five thousand monitors in a namespace cost nothing noticeable."""

    def __init__(self) -> None:
        self._names: dict[str, list[str]] = {}

    def add(self, namespace: str, name: str) -> int:
        """Add ``name`` (no-op when present); its rank."""
        names = self._names.setdefault(namespace, [])
        index = bisect.bisect_left(names, name)
        if index == len(names) or names[index] != name:
            names.insert(index, name)
        return index

    def remove(self, namespace: str, name: str) -> int | None:
        """Remove ``name``; the rank it had, or None when it was not there."""
        names = self._names.get(namespace)
        if not names:
            return None
        index = bisect.bisect_left(names, name)
        if index == len(names) or names[index] != name:
            return None
        del names[index]
        if not names:
            del self._names[namespace]
        return index

    def rank(self, namespace: str, name: str) -> int | None:
        names = self._names.get(namespace, [])
        index = bisect.bisect_left(names, name)
        return index if index < len(names) and names[index] == name else None

    def at(self, namespace: str, rank: int) -> str | None:
        names = self._names.get(namespace, [])
        return names[rank] if 0 <= rank < len(names) else None

    def count(self, namespace: str) -> int:
        return len(self._names.get(namespace, ()))

    def namespaces(self) -> list[str]:
        return list(self._names)
