"""Probe slots shared fairly between groups (namespaces), instead of first come, first served.

A plain semaphore hands slots out in arrival order, so one tenant with hundreds of monitors
that each hold a slot for a long timeout takes every slot and everybody else waits behind
them. Here the waiting probes are queued per group; a freed slot goes to the next group in
round-robin order that is under its cap, and within a group to the probe that was due first.
The cap per group (below the total) means another group always finds a free slot.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

Group = TypeVar("Group", bound=Hashable)


class FairGate(Generic[Group]):
    def __init__(self, capacity: int, per_group: int) -> None:
        if capacity < 1 or per_group < 1:
            raise ValueError("capacity and per_group must be at least 1")
        self.capacity = capacity
        self.per_group = min(per_group, capacity)
        self._loop = asyncio.get_running_loop()
        self._total = 0
        self._running: dict[Group, int] = {}
        self._waiting: dict[Group, list[tuple[float, int, asyncio.Future[None]]]] = {}
        self._turns: deque[Group] = deque()  # groups with waiters, in round-robin order
        self._seq = 0

    @property
    def in_use(self) -> int:
        return self._total

    def running(self, group: Group) -> int:
        return self._running.get(group, 0)

    def waiting(self) -> int:
        """Probes waiting for a slot (counting any that were cancelled and not yet pruned)."""
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, group: Group, due: float) -> None:
        """Wait for a slot for ``group``; ``due`` orders waiters within the group."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._seq += 1
        queue = self._waiting.get(group)
        if queue is None:
            queue = self._waiting[group] = []
            self._turns.append(group)
        heapq.heappush(queue, (due, self._seq, future))
        self._dispatch()  # a free slot is taken at once (awaiting a done future does not yield)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(group)  # granted, then cancelled before it could be used
            else:
                future.cancel()  # pruned when it reaches the head of its queue
            raise

    def release(self, group: Group) -> None:
        self._total -= 1
        left = self._running[group] - 1
        if left:
            self._running[group] = left
        else:
            del self._running[group]
        self._dispatch()

    def _take(self, group: Group) -> None:
        self._total += 1
        self._running[group] = self._running.get(group, 0) + 1

    def _dispatch(self) -> None:
        while self._total < self.capacity:
            group = self._next_group()
            if group is None:
                return
            queue = self._waiting[group]
            _, _, future = heapq.heappop(queue)
            future.set_result(None)
            self._take(group)
            if self._prune(queue):
                self._turns.append(group)  # served: to the back of the line
            else:
                del self._waiting[group]

    def _next_group(self) -> Group | None:
        """The first group in turn that has a live waiter and is under its cap."""
        for _ in range(len(self._turns)):
            group = self._turns.popleft()
            if not self._prune(self._waiting[group]):
                del self._waiting[group]
                continue
            if self.running(group) < self.per_group:
                return group
            self._turns.append(group)
        return None

    @staticmethod
    def _prune(queue: list[tuple[float, int, asyncio.Future[None]]]) -> bool:
        """Drop cancelled waiters from the head; whether a live one remains."""
        while queue and queue[0][2].done():
            heapq.heappop(queue)
        return bool(queue)
