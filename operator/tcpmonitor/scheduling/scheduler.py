"""Runs each monitor's probe on its interval; knows nothing about probes or Kubernetes.

Each key owns a fixed phase within its interval, derived from a hash of the key, so a thousand
monitors with the same interval are spread evenly over it instead of firing together, and stay
spread across restarts and re-creations. A probe runs at once when asked (creation, spec change)
and afterwards on its phase; ``probe_now`` adds one probe without moving the phase. A fair gate
bounds concurrency (round-robin across groups, such as namespaces, with a cap per group, or the
group's own smaller one from ``cap_of_group``), a key never overlaps with itself (a slot that
finds the previous probe still running is skipped and counted as ``overlap``), a probe still
waiting for a slot when its next one is due is dropped and counted as ``concurrency`` (a fresh
one takes its place), and unscheduling cancels a running probe at once.

No single key can stop the others: a bad interval is refused by ``schedule``, the timer
callback handles each due key on its own (a key that fails there is dropped and reported) and
is always re-armed, and ``overdue`` tells a liveness check when the timer has stopped firing.

Timers are plain ``loop.call_at`` callbacks over one heap: no task sleeps per monitor, so ten
thousand monitors cost ten thousand heap entries, not ten thousand coroutines. Nor does a probe
waiting for a slot hold a task (it is a ticket in the gate; the task starts when the slot is
granted): one namespace's thousands of probes queued behind its cap add nothing to the event
loop's work that another namespace's probes would wait behind.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import zlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .fair_gate import FairGate, Ticket

log = logging.getLogger(__name__)

Key = TypeVar("Key", bound=Hashable)


def phase_of(key: Hashable, interval: float) -> float:
    """A stable offset in [0, interval) for ``key``; crc32 because hash() is salted per run."""
    return zlib.crc32(repr(key).encode()) / 2**32 * interval


@dataclass(slots=True)
class _Entry(Generic[Key]):
    key: Key
    interval: float
    phase: float
    version: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)  # a probe running
    ticket: Ticket | None = field(default=None, repr=False)  # a probe waiting for a slot
    next_due: float = float("inf")  # the slot after the one being probed

    def next_slot(self, after: float) -> float:
        """The first time >= ``after`` that falls on this key's phase."""
        return after + (self.phase - after) % self.interval


@dataclass
class SchedulerStats:
    """Counters a caller may export; plain ints, so the scheduler needs no metrics library."""

    probes_started: int = 0
    slots_skipped: int = 0  # overlap: the key's previous probe was still running
    probes_starved: int = 0  # concurrency: no slot was free before the next one was due
    in_flight: int = 0
    entries_dropped: int = 0  # keys whose timer handling raised


# Far below any monitor's (the API's floor is 1 s); it keeps "now + interval / 2" later than now
# in float arithmetic, so the timer callback can never spin on one key.
MIN_INTERVAL = 0.01

SKIP_OVERLAP = "overlap"
SKIP_CONCURRENCY = "concurrency"


def default_share(max_concurrency: int) -> int:
    """Slots one group may hold: three quarters, so the other groups always find a quarter."""
    return max(1, max_concurrency * 3 // 4)


def _whole_key(key: Hashable) -> Hashable:
    return key


class Scheduler(Generic[Key]):
    def __init__(
        self,
        probe: Callable[[Key], Awaitable[None]],
        *,
        max_concurrency: int = 256,
        max_concurrency_per_group: int | None = None,
        group_of: Callable[[Key], Hashable] = _whole_key,
        cap_of_group: Callable[[Hashable], int | None] | None = None,
        on_lag: Callable[[float], None] | None = None,
        on_error: Callable[[Key, BaseException], None] | None = None,
        on_skip: Callable[[Key, str], None] | None = None,
    ) -> None:
        self._probe = probe
        per_group = max_concurrency_per_group or default_share(max_concurrency)
        self._gate: FairGate[Hashable] = FairGate(max_concurrency, per_group, cap_of_group)
        self._group_of = group_of
        self._on_lag = on_lag
        self._on_error = on_error
        self._on_skip = on_skip
        self._entries: dict[Key, _Entry[Key]] = {}
        self._heap: list[tuple[float, int, Key, int]] = []
        self._seq = 0
        self._versions = 0  # the last version handed to an entry; see schedule()
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
        if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        if interval < MIN_INTERVAL:
            raise ValueError(f"interval must be at least {MIN_INTERVAL}s, not {interval!r}")
        entry = self._entries.get(key)
        # Versions are unique across entries, not per entry: a key removed and added again
        # (a runner handing a monitor over and taking it back, an object re-created under
        # its name) must not match the removed entry's slots still in the heap, or it would
        # be fired twice an interval, the second firing cancelling the first's probe.
        self._versions += 1
        if entry is None:
            entry = _Entry(key, interval, phase_of(key, interval), version=self._versions)
            self._entries[key] = entry
        else:
            entry.version = self._versions
            entry.interval = interval
            entry.phase = phase_of(key, interval)
            if immediate:
                self._cancel(entry)
        now = self._loop.time()
        self._push(now if immediate else entry.next_slot(now), entry)

    def probe_now(self, key: Key) -> bool:
        """Probe ``key`` as soon as a slot is free, keeping its schedule (phase and next slot).

        A probe of it already running or waiting for a slot is the one asked for (no second
        one is queued). False when ``key`` is not scheduled.
        """
        entry = self._entries.get(key)
        if entry is None or self._closed:
            return False
        if (entry.task is not None and not entry.task.done()) or entry.ticket is not None:
            return True
        group = self._group_of(key)
        now = self._loop.time()
        ticket = self._gate.request(group, now, lambda: self._granted(entry, group, now))
        if ticket.waiting:
            entry.ticket = ticket
        return True

    def caps_changed(self) -> None:
        """``cap_of_group`` answers differently now: hand out what a raised cap allows."""
        self._gate.caps_changed()

    def until_next_slot(self, key: Key) -> float | None:
        """Seconds until ``key``'s next slot, for a probe that must be done by then."""
        entry = self._entries.get(key)
        if entry is None or not math.isfinite(entry.next_due):
            return None
        return max(0.0, entry.next_due - self._loop.time())

    def overdue(self) -> float:
        """Seconds the earliest due slot has waited for the timer: about 0 while it fires."""
        if self._closed or not self._heap:
            return 0.0
        return max(0.0, self._loop.time() - self._heap[0][0])

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
        if entry.ticket is not None:
            entry.ticket.withdraw()
            entry.ticket = None
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
        self._timer_at = float("inf")
        try:
            now = self._loop.time()
            while self._heap and self._heap[0][0] <= now:
                due, _, key, version = heapq.heappop(self._heap)
                try:
                    self._fire_one(key, version, due, now)
                except Exception as exc:  # one key's arithmetic must not stop the others
                    self._drop(key, exc)
        finally:
            self._arm()

    def _fire_one(self, key: Key, version: int, due: float, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.version != version:
            return  # unscheduled or rescheduled since: a stale heap entry
        # Back on this key's phase: after an immediate probe the next one waits between half
        # and one and a half intervals; after a stall the slots are rejoined, not replayed.
        following = entry.next_slot(max(due, now) + entry.interval / 2)
        entry.next_due = following
        self._seq += 1
        heapq.heappush(self._heap, (following, self._seq, key, version))
        if entry.task is not None and not entry.task.done():
            self.stats.slots_skipped += 1
            self._skipped(key, SKIP_OVERLAP)
            return
        if entry.ticket is not None:
            # Still waiting for a slot a whole interval later: its result would come too late
            # to mean anything. Drop it and queue this slot's probe instead.
            entry.ticket.withdraw()
            entry.ticket = None
            self.stats.probes_starved += 1
            self._skipped(key, SKIP_CONCURRENCY)
        group = self._group_of(key)
        # No task until the slot is granted: a probe that waits costs a heap entry, however
        # many of them a namespace has queued behind its cap.
        ticket = self._gate.request(group, due, lambda: self._granted(entry, group, due))
        if ticket.waiting:  # else granted at once
            entry.ticket = ticket

    def _drop(self, key: Key, exc: Exception) -> None:
        log.error("dropping %r from the schedule: %s: %s", key, type(exc).__name__, exc)
        self.stats.entries_dropped += 1
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._cancel(entry)
        self._report(key, exc)

    def _report(self, key: Key, exc: BaseException) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(key, exc)
        except Exception:
            log.exception("reporting the failure of %r failed", key)

    def _skipped(self, key: Key, reason: str) -> None:
        if self._on_skip is None:
            return
        try:
            self._on_skip(key, reason)
        except Exception:
            log.exception("reporting a skipped probe of %r failed", key)

    def _granted(self, entry: _Entry[Key], group: Hashable, due: float) -> bool:
        """A slot for ``entry``'s waiting probe: start it. Called by the gate, synchronously;
        the gate grants only tickets not withdrawn, so this is the entry's current one."""
        if self._closed or self._entries.get(entry.key) is not entry:
            return False
        entry.ticket = None
        if self._on_lag is not None:
            try:
                self._on_lag(max(0.0, self._loop.time() - due))
            except Exception:
                log.exception("reporting the schedule lag failed")
        task = self._loop.create_task(self._run(entry))
        # Released when the task ends however it ends, even cancelled before its first step
        # (a coroutine that never started runs no finally).
        task.add_done_callback(lambda done: self._ended(entry, group, done))
        entry.task = task
        return True

    def _ended(self, entry: _Entry[Key], group: Hashable, task: asyncio.Task[None]) -> None:
        self._gate.release(group)
        if entry.task is task:
            entry.task = None  # a finished task keeps its coroutine: a kilobyte per key

    async def _run(self, entry: _Entry[Key]) -> None:
        self.stats.probes_started += 1
        self.stats.in_flight += 1
        try:
            await self._probe(entry.key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one monitor's bug must never stop the others
            log.exception("probe of %s failed unexpectedly", entry.key)
            self._report(entry.key, exc)
        finally:
            self.stats.in_flight -= 1
