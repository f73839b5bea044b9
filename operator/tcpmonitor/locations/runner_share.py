"""A runner's share of the monitors: its location's, by rendezvous over the live runners.

Kept apart from kopf and the API so the rules (which monitors, when to hand over, how to resume
from the location's status entry) are tested without a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ..api import TcpMonitor, TcpMonitorStatus
from ..scheduling.runtime import Key, MonitorRuntime
from .assignment import owner

log = logging.getLogger(__name__)


def location_view(monitor: TcpMonitor, location: str, now: datetime | None = None) -> TcpMonitor:
    """The monitor as a runner of ``location`` sees it: that location's entry as its status.

    A fresh entry (probed within the last interval and a half) resumes on schedule; a stale one
    (its runner died) keeps its counters but is probed at once by the new owner.
    """
    status = monitor.status
    entry = next((e for e in status.locations if e.name == location), None) if status else None
    if entry is None:
        return monitor.model_copy(update={"status": None})
    now = now or datetime.now(UTC)
    fresh = entry.last_probe_time is not None and now - entry.last_probe_time < timedelta(
        seconds=monitor.spec.interval_seconds * 1.5
    )
    view = TcpMonitorStatus(
        observed_generation=monitor.metadata.generation if fresh else None,
        state=entry.state,
        last_probe_time=entry.last_probe_time,
        last_transition_time=entry.last_transition_time,
        consecutive_successes=entry.consecutive_successes,
        consecutive_failures=entry.consecutive_failures,
        last_result=entry.last_result,
        last_handled_probe_request=entry.last_handled_probe_request,
    )
    return monitor.model_copy(update={"status": view})


class WriteGate(Protocol):
    """Holds a runner's status writes while its Lease may have lapsed (kube's reporter)."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...


def written_by_another(monitor: TcpMonitor, location: str, identity: str) -> bool:
    """Whether ``location``'s entry was last written by a runner other than ``identity``."""
    status = monitor.status
    entry = next((e for e in status.locations if e.name == location), None) if status else None
    return entry is not None and entry.runner is not None and entry.runner != identity


class RunnerShard:
    def __init__(
        self,
        runtime: MonitorRuntime,
        location: str,
        identity: str,
        writes: WriteGate | None = None,
    ) -> None:
        self.runtime = runtime
        self.writes = writes
        self.location = location
        self.identity = identity
        # Unknown until the first Lease list: taking everything before knowing the others would
        # probe their monitors twice and write their status entries.
        self.members: list[str] | None = None
        self.known: dict[Key, TcpMonitor] = {}
        self.owned: set[Key] = set()

    def _mine(self, key: Key) -> bool:
        if self.members is None:
            return False
        return owner(f"{key[0]}/{key[1]}", self.members) == self.identity

    async def observe(self, key: Key, monitor: TcpMonitor | None) -> None:
        """A watch event: the monitor as it is now, or None when deleted."""
        if monitor is None or self.location not in monitor.spec.locations:
            self.forget(key)
            return
        self.known[key] = monitor
        await self._reconcile(key)

    async def set_members(self, members: list[str]) -> None:
        """Membership changed: take over what is now ours, let go of what is not."""
        self.members = sorted({*members, self.identity})
        for key in list(self.known):
            await self._reconcile(key)

    async def _reconcile(self, key: Key) -> None:
        monitor = self.known.get(key)
        if monitor is None:
            return
        if self._mine(key):
            if key not in self.owned:
                log.debug("taking %s/%s", *key)
            self.owned.add(key)
            await self.runtime.apply(location_view(monitor, self.location))
        else:
            self._drop(key)

    def fence(self) -> None:
        """This runner's Lease may have lapsed: others may take its monitors any moment, so
        nothing is written; probing goes on, so that if the whole API server was away nothing
        that happened meanwhile is lost."""
        if self.writes is not None:
            self.writes.pause()

    async def rejoin(self, current: Mapping[Key, TcpMonitor] | None = None) -> None:
        """The Lease is renewed and membership is current again (``set_members`` ran).

        ``current`` is the monitors as the API server has them now (the watch may still be
        catching up after the same outage); without it, the last ones the watch delivered.

        A monitor whose entry another runner wrote meanwhile was taken over: what this runner
        observed while cut off is stale next to it, so it is dropped (queued writes too) and
        the monitor resumes from the stored entry. Where nobody wrote (the API server itself
        was away), the queued writes, transitions included, go out as they are.
        """
        for key in sorted(self.owned):
            monitor = (current or {}).get(key) or self.known.get(key)
            if monitor is not None and written_by_another(monitor, self.location, self.identity):
                log.info("%s/%s was probed by another runner meanwhile: resuming from it", *key)
                self.runtime.remove(key)
                await self.runtime.apply(location_view(monitor, self.location))
        if self.writes is not None:
            self.writes.resume()

    def forget(self, key: Key) -> None:
        """The monitor was deleted."""
        self.known.pop(key, None)
        self._drop(key)

    def _drop(self, key: Key) -> None:
        if key in self.owned:
            log.debug("handing over %s/%s", *key)
            self.owned.discard(key)
            self.runtime.remove(key)
