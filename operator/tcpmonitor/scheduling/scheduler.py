"""Runs each monitor's probe on its interval; knows nothing about probes or Kubernetes.

Each key owns a fixed phase within its interval, derived from a hash of the key, so a thousand
monitors with the same interval are spread evenly over it instead of firing together, and stay
spread across restarts and re-creations. A probe runs at once when asked (creation, spec change)
and afterwards on its phase. A global semaphore bounds concurrency, a key never overlaps with
itself (a slot that finds the previous probe still running is skipped and counted), and
unscheduling cancels a running probe at once.

Timers are plain ``loop.call_at`` callbacks over one heap: no task sleeps per monitor, so ten
thousand monitors cost ten thousand heap entries, not ten thousand coroutines.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import zlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Key = TypeVar("Key", bound=Hashable)


def phase_of(key: Hashable, interval: float) -> float:
    """A stable offset in [0, interval) for ``key``; crc32 because hash() is salted per run."""
    return zlib.crc32(repr(key).encode()) / 2**32 * interval


@dataclass
class _Entry(Generic[Key]):
    key: Key
    interval: float
    phase: float
    version: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def next_slot(self, after: float) -> float:
        """The first time >= ``after`` that falls on this key's phase."""
        return after + (self.phase - after) % self.interval


@dataclass
class SchedulerStats:
    """Counters a caller may export; plain ints, so the scheduler needs no metrics library."""

    probes_started: int = 0
    slots_skipped: int = 0
    in_flight: int = 0


class Scheduler(Generic[Key]):
    def __init__(
        self,
        probe: Callable[[Key], Awaitable[None]],
        *,
        max_concurrency: int = 256,
        on_lag: Callable[[float], None] | None = None,
        on_error: Callable[[Key, BaseException], None] | None = None,
    ) -> None:
        self._probe = probe
        self._gate = asyncio.Semaphore(max_concurrency)
        self._on_lag = on_lag
        self._on_error = on_error
        self._entries: dict[Key, _Entry[Key]] = {}
        self._heap: list[tuple[float, int, Key, int]] = []
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.stats = SchedulerStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def schedule(self, key: Key, interval: float, *, immediate: bool) -> None:
        """Add ``key`` or change its interval. ``immediate`` probes now, cancelling a probe of
        the previous version that is still running (its result would describe an old spec)."""
        if self._closed:
            raise RuntimeError("scheduler is closed")
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(key, interval, phase_of(key, interval))
            self._entries[key] = entry
        else:
            entry.version += 1
            entry.interval = interval
            entry.phase = phase_of(key, interval)
            if immediate:
                self._cancel(entry)
        now = self._loop.time()
        self._push(now if immediate else entry.next_slot(now), entry)

    def unschedule(self, key: Key) -> None:
        """Stop probing ``key`` at once; a running probe is cancelled."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._cancel(entry)

    async def close(self) -> None:
        """Cancel everything and wait until running probes have unwound."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for entry in list(self._entries.values()):
            self._cancel(entry)
        self._entries.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _cancel(self, entry: _Entry[Key]) -> None:
        if entry.task is not None and not entry.task.done():
            entry.task.cancel()
        entry.task = None

    def _push(self, due: float, entry: _Entry[Key]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, entry.key, entry.version))
        if due < self._timer_at:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap and not self._closed:
            self._timer_at = self._heap[0][0]
            self._timer = self._loop.call_at(self._timer_at, self._fire)
        else:
            self._timer_at = float("inf")

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        while self._heap and self._heap[0][0] <= now:
            due, _, key, version = heapq.heappop(self._heap)
            entry = self._entries.get(key)
            if entry is None or entry.version != version:
                continue  # unscheduled or rescheduled since: a stale heap entry
            # Back on this key's phase: after an immediate probe the next one waits between half
            # and one and a half intervals; after a stall the slots are rejoined, not replayed.
            following = entry.next_slot(max(due, now) + entry.interval / 2)
            self._seq += 1
            heapq.heappush(self._heap, (following, self._seq, key, version))
            if entry.task is not None and not entry.task.done():
                self.stats.slots_skipped += 1
                continue
            entry.task = self._loop.create_task(self._run(entry, due))
        self._timer_at = float("inf")
        self._arm()

    async def _run(self, entry: _Entry[Key], due: float) -> None:
        async with self._gate:
            started = self._loop.time()
            if self._on_lag is not None:
                self._on_lag(max(0.0, started - due))
            self.stats.probes_started += 1
            self.stats.in_flight += 1
            try:
                await self._probe(entry.key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one monitor's bug must never stop the others
                log.exception("probe of %s failed unexpectedly", entry.key)
                if self._on_error is not None:
                    self._on_error(entry.key, exc)
            finally:
                self.stats.in_flight -= 1
