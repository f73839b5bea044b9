"""Probe slots shared fairly between groups (namespaces), instead of first come, first served.

A plain semaphore hands slots out in arrival order, so one tenant with hundreds of monitors
that each hold a slot for a long timeout takes every slot and everybody else waits behind
them. Here the waiting probes are queued per group; a freed slot goes to the next group in
round-robin order that is under its cap, and within a group to the probe that was due first.
The cap per group (below the total) means another group always finds a free slot.

A group may have a smaller cap of its own (``cap_of``: a namespace's policy limit on concurrent
probes). It is asked at each hand-out, not remembered, so a policy change acts on the next
freed slot; a lowered cap lets running probes finish and hands out no more until the group is
under it. A hand-out looks at each waiting group at most once: O(groups), however many wait.

A waiting probe is a ``Ticket`` in its group's heap, not a task: the scheduler starts a task
only when the slot is granted, so five thousand probes waiting behind a namespace's cap cost
five thousand heap entries, and dropping one that waited too long costs no task switch.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Group = TypeVar("Group", bound=Hashable)


class Ticket:
    """A request for a slot. ``grant`` is called (synchronously, from a release or a request)
    when the slot is handed out and returns whether it was taken; it must not call the gate."""

    __slots__ = ("_grant", "granted", "waiting")

    def __init__(self, grant: Callable[[], bool]) -> None:
        self._grant = grant
        self.waiting = True
        self.granted = False

    def withdraw(self) -> bool:
        """Stop waiting; False when it no longer waits (granted: the holder must release)."""
        was_waiting, self.waiting = self.waiting, False
        return was_waiting


class FairGate(Generic[Group]):
    def __init__(
        self,
        capacity: int,
        per_group: int,
        cap_of: Callable[[Group], int | None] | None = None,
    ) -> None:
        if capacity < 1 or per_group < 1:
            raise ValueError("capacity and per_group must be at least 1")
        self.capacity = capacity
        self.per_group = min(per_group, capacity)
        self._cap_of = cap_of
        self._loop = asyncio.get_running_loop()
        self._total = 0
        self._running: dict[Group, int] = {}
        self._waiting: dict[Group, list[tuple[float, int, Ticket]]] = {}
        self._turns: deque[Group] = deque()  # groups with waiters, in round-robin order
        # Groups with waiters that were at their cap when their turn came: out of the turns
        # until one of their own probes ends (or the caps change), so that a hand-out does not
        # step over the same capped groups again and again.
        self._parked: set[Group] = set()
        self._seq = 0

    @property
    def in_use(self) -> int:
        return self._total

    def running(self, group: Group) -> int:
        return self._running.get(group, 0)

    def cap(self, group: Group) -> int:
        """Slots ``group`` may hold now: the per-group cap, or its own if that is smaller."""
        if self._cap_of is None:
            return self.per_group
        own = self._cap_of(group)
        return self.per_group if own is None else max(1, min(self.per_group, own))

    def caps_changed(self) -> None:
        """Hand out the slots a raised cap allows (a lowered one needs nothing: it is read at
        each hand-out)."""
        self._turns.extend(self._parked)
        self._parked.clear()
        self._dispatch()

    def waiting(self) -> int:
        """Requests waiting for a slot (counting withdrawn ones not yet pruned)."""
        return sum(len(queue) for queue in self._waiting.values())

    def request(self, group: Group, due: float, grant: Callable[[], bool]) -> Ticket:
        """Queue a request for a slot for ``group``; ``due`` orders requests within the group.
        A free slot is granted before this returns."""
        ticket = Ticket(grant)
        self._seq += 1
        queue = self._waiting.get(group)
        if queue is None:
            queue = self._waiting[group] = []
            self._turns.append(group)
        heapq.heappush(queue, (due, self._seq, ticket))
        self._dispatch()
        return ticket

    async def acquire(self, group: Group, due: float) -> None:
        """Wait for a slot for ``group`` (``request`` for a coroutine)."""
        future: asyncio.Future[None] = self._loop.create_future()

        def grant() -> bool:
            if future.done():  # the waiting task was cancelled: not taken
                return False
            future.set_result(None)
            return True

        ticket = self.request(group, due, grant)
        try:
            await future  # awaiting a done future does not yield
        except asyncio.CancelledError:
            if not ticket.withdraw() and ticket.granted:
                self.release(group)  # granted, then cancelled before it could be used
            raise

    def release(self, group: Group) -> None:
        self._total -= 1
        left = self._running[group] - 1
        if left:
            self._running[group] = left
        else:
            del self._running[group]
        if group in self._parked:
            self._parked.discard(group)
            self._turns.append(group)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._total < self.capacity:
            group = self._next_group()
            if group is None:
                return
            queue = self._waiting[group]
            _, _, ticket = heapq.heappop(queue)
            ticket.waiting = False
            try:
                ticket.granted = ticket._grant()
            except Exception:  # the gate's counts must stay right whatever a grantee does
                log.exception("granting a probe slot failed")
            if ticket.granted:
                self._total += 1
                self._running[group] = self._running.get(group, 0) + 1
            if self._prune(queue):
                self._turns.append(group)  # served: to the back of the line
            else:
                del self._waiting[group]

    def _next_group(self) -> Group | None:
        """The first group in turn that has a live waiter and is under its cap; the capped
        ones met on the way are parked."""
        while self._turns:
            group = self._turns.popleft()
            if not self._prune(self._waiting[group]):
                del self._waiting[group]
                continue
            if self.running(group) < self.cap(group):
                return group
            self._parked.add(group)
        return None

    @staticmethod
    def _prune(queue: list[tuple[float, int, Ticket]]) -> bool:
        """Drop withdrawn requests from the head; whether a live one remains."""
        while queue and not queue[0][2].waiting:
            heapq.heappop(queue)
        return bool(queue)
