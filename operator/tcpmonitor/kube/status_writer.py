"""Writes status through the status subresource, and Events, with bounded API load.

Writes are queued per monitor and coalesced (only the newest status of a monitor is sent),
transitions go before heartbeats, one monitor's writes never overtake each other, a fixed
number of workers bounds the requests in flight, and an optional budget bounds the writes per
second. The operator never writes ``spec``: patches go to ``/status`` only.

Two writers share the queue: the controller (or the all-in-one operator) merge-patches the
top-level status fields; a runner server-side-applies only its own location's entry of
``status.locations``, under a field manager per location, so writers never lose each other's
updates and need no read-modify-write.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from .. import GROUP, KIND, PLURAL, VERSION
from ..api import LocationStatus, TcpMonitorStatus
from ..api.result import MAX_MESSAGE
from ..reporting import EventSpec, status_body
from ..reporting.locations import location_entry
from ..scheduling.runtime import MonitorRef, StatusReport
from ..telemetry.metrics import Metrics
from .api_client import KubeApi, classify_api_error, describe_api_error

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = f"{GROUP}/operator"
Key = tuple[str, str]


@dataclass
class _Pending:
    ref: MonitorRef
    body: dict[str, Any]
    urgent: bool
    state: str | None = None  # the monitor's state in this body: a change of it is kept


Sender = Callable[[MonitorRef, dict[str, Any]], Awaitable[None]]


RETRY_FIRST = 0.5
RETRY_MAX = 30.0
"""A failed write is tried again after 0.5 s, doubling to at most 30 s while it keeps failing:
soon enough that a short API server hiccup costs a second, slow enough that an outage costs a
request per monitor per half minute, not a storm. A newer body for the monitor replaces the
failed one (newest wins) unless the failed one carries a state the newer one does not (a
transition, kept); an urgent one keeps its priority."""

MAX_KEPT_PER_MONITOR = 4
MAX_KEPT = 2000
TRANSITION_SPACING = 1.0
"""While writes cannot go through, a monitor's bodies coalesce (newest wins) except where its
state changed: Up -> Down -> Up during an outage is written as Down, then Up, so that watchers
(the controller, ``kubectl get -w``, GitOps tools) see the Down too. At most four bodies per
monitor and 2,000 transitions in all wait beside the newest ones; beyond that the oldest
transitions coalesce and are counted. Kept transitions of a monitor are written a second apart:
watchers that batch events (kopf does, for 0.1 s) would otherwise see only the last."""


MAX_PENDING_EVENTS = 5000
EVENT_MAX_AGE = 600.0
"""An Event that cannot be posted is tried again with the same back-off as status writes, for
up to ten minutes (an API server outage, etcd restarting, throttling); at most 5,000 Events wait
at once, a few megabytes. Its eventTime stays the moment it happened."""


class WriteQueue:
    """Coalescing, prioritised, per-key ordered, rate-limited writes; failed ones are retried.

    Memory is bounded by the number of monitors plus MAX_KEPT: one pending body per monitor and
    a bounded number of kept transitions, whatever the number of failures or of statuses
    submitted while the API server is away. ``pause`` holds every write (a runner or controller
    whose Lease lapsed must not write what another may now own) without losing any."""

    def __init__(
        self, send: Sender, metrics: Metrics, *, workers: int = 4, rate: float | None = None
    ) -> None:
        self._send = send
        self.metrics = metrics
        # Per monitor, oldest first: kept transitions, then the newest body.
        self._pending: dict[Key, list[_Pending]] = {}
        self._kept = 0
        self._order: list[tuple[int, int, Key]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._open = asyncio.Event()
        self._open.set()
        # One write per monitor at a time, so an older status can never overtake a newer one.
        self._in_flight: set[Key] = set()
        self._rate = rate
        # At least one whole token, or a budget below one write a second would never write.
        self._burst = max(1.0, rate or 0.0)
        self._tokens = self._burst
        self._refilled = time.monotonic()
        self._failures: dict[Key, int] = {}  # writes in a row that failed, per monitor
        self._retry: dict[Key, asyncio.TimerHandle] = {}  # monitors backing off or spaced
        self._loop = asyncio.get_running_loop()
        self._tasks = [self._loop.create_task(self._worker()) for _ in range(workers)]
        metrics.status_writes_queued.set_function(self.backlog)

    def submit(
        self, ref: MonitorRef, body: dict[str, Any], *, urgent: bool, state: str | None = None
    ) -> None:
        key = ref.key
        new = _Pending(ref, body, urgent, state)
        chain = self._pending.get(key)
        if chain is None:
            self._pending[key] = [new]
            if key not in self._retry:  # a monitor backing off is queued again by its timer
                self._queue(key, urgent)
            return
        promote = urgent and not chain[0].urgent
        last = chain[-1]
        if state is not None and last.state is not None and state != last.state:
            self._keep(key, chain, new)
        else:
            # Coalesce: the newest body wins.
            chain[-1] = _Pending(ref, body, last.urgent or urgent, state)
        if promote:
            chain[0].urgent = True  # moved to the front
            heapq.heappush(self._order, (0, next(self._seq), key))

    def _keep(self, key: Key, chain: list[_Pending], new: _Pending) -> None:
        """Append a state change behind the monitor's pending bodies, within the bounds."""
        if len(chain) >= MAX_KEPT_PER_MONITOR or self._kept >= MAX_KEPT:
            # Full: the oldest kept transition of this monitor gives way (or, with only one
            # body pending, the newest replaces it as before).
            if len(chain) > 1:
                chain.pop(0)
                self._kept -= 1
            else:
                chain.clear()
            self.metrics.status_transitions_coalesced.inc()
        if chain:
            self._kept += 1
        chain.append(new)

    def _queue(self, key: Key, urgent: bool) -> None:
        heapq.heappush(self._order, (0 if urgent else 1, next(self._seq), key))
        self._wakeup.set()

    def forget(self, key: Key) -> None:
        chain = self._pending.pop(key, None)
        if chain:
            self._kept -= len(chain) - 1
        self._failures.pop(key, None)
        timer = self._retry.pop(key, None)
        if timer is not None:
            timer.cancel()

    def pause(self) -> None:
        """Hold every write (those submitted meanwhile coalesce as usual) until ``resume``."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    async def wait_open(self) -> None:
        await self._open.wait()

    def backlog(self) -> int:
        return len(self._pending) + self._kept

    async def close(self) -> None:
        for timer in self._retry.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _take_token(self) -> None:
        if self._rate is None:
            return
        while True:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self._rate)

    def _take(self, key: Key) -> _Pending | None:
        chain = self._pending.get(key)
        if not chain:
            return None
        pending = chain.pop(0)
        if chain:
            self._kept -= 1
        else:
            del self._pending[key]
        return pending

    async def _worker(self) -> None:
        while True:
            while not self._order:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._open.wait()
            if not self._order:
                continue  # another worker took the last one while this one waited
            _, _, key = heapq.heappop(self._order)
            if key in self._in_flight or key in self._retry:
                continue  # re-queued when the write in flight finishes, or by its timer
            if key not in self._pending:
                continue  # already written through an earlier queue entry
            await self._take_token()
            if key in self._in_flight or key in self._retry or not self._open.is_set():
                # Another worker took this monitor, or writes were paused, while this one
                # waited for a token: queue it again rather than lose the entry.
                if key not in self._in_flight and key not in self._retry:
                    self._queue(key, self._pending[key][0].urgent)
                continue
            pending = self._take(key)
            if pending is None:
                continue
            self._in_flight.add(key)
            try:
                written = await self._write(pending)
            finally:
                self._in_flight.discard(key)
            if not written:
                self._back_off(key, pending)
                continue
            self._failures.pop(key, None)
            chain = self._pending.get(key)
            if chain is None:
                continue
            if pending.state is not None and chain[0].state != pending.state:
                # The next body changes the state again: let watchers see this one first.
                self._retry[key] = self._loop.call_later(
                    TRANSITION_SPACING, self._retry_now, key, False
                )
            else:
                self._queue(key, chain[0].urgent)

    def _back_off(self, key: Key, failed: _Pending) -> None:
        """Keep the failed body unless a newer one of the same state came meanwhile (a failed
        transition stays before the newer bodies), and try again later."""
        chain = self._pending.get(key)
        if chain is None:
            self._pending[key] = [failed]
        elif failed.state is not None and chain[0].state != failed.state:
            chain.insert(0, failed)
            self._kept += 1
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))
        self._retry[key] = self._loop.call_later(delay, self._retry_now, key, True)

    def _retry_now(self, key: Key, failed: bool) -> None:
        self._retry.pop(key, None)
        chain = self._pending.get(key)
        if chain:
            if failed:
                self.metrics.status_write_retries.inc()
            self._queue(key, chain[0].urgent)

    async def _write(self, pending: _Pending) -> bool:
        """Send one body; False when it failed and is worth retrying."""
        ref = pending.ref
        # What the API server receives, as the client serialises it: the cost of a write.
        size = len(json.dumps(pending.body, separators=(",", ":"), default=str))
        self.metrics.status_patch_bytes.inc(size)
        try:
            await self._send(ref, pending.body)
        except Exception as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                return True  # deleted meanwhile; the watch will tell the runtime
            self.metrics.status_patches.labels("error").inc()
            self.metrics.api_errors.labels("status", classify_api_error(exc)).inc()
            log.warning(
                "status write of %s/%s failed: %s (will retry)",
                ref.namespace,
                ref.name,
                describe_api_error(exc),
            )
            return False
        self.metrics.status_patches.labels("success").inc()
        self.metrics.status_last_success.set_to_current_time()
        return True


async def patch_status(api: KubeApi, ref: MonitorRef, body: dict[str, Any], **options: Any) -> None:
    """PATCH the status subresource (a merge patch, or with ``options`` a server-side apply)."""
    await api.call(
        api.custom.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        ref.namespace,
        PLURAL,
        ref.name,
        body,
        **options,
    )


class KubeReporter:
    """The runtime's Reporter for a cluster: merge patches of status, and Events."""

    def __init__(
        self,
        api: KubeApi,
        metrics: Metrics,
        *,
        workers: int = 4,
        rate: float | None = None,
        instance: str,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.instance = instance  # the process identity: Events say which replica saw it
        self.queue = WriteQueue(self._merge_patch, metrics, workers=workers, rate=rate)
        self._events: set[asyncio.Task[None]] = set()
        self.fenced = False

    def write_status(
        self, ref: MonitorRef, report: StatusReport | TcpMonitorStatus, *, urgent: bool
    ) -> None:
        """The top-level status: the runtime's report (operator) or the controller's verdict."""
        status = report.status if isinstance(report, StatusReport) else report
        state = status.state.value if status.state is not None else None
        self.queue.submit(ref, {"status": status_body(status)}, urgent=urgent, state=state)

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        if len(self._events) >= MAX_PENDING_EVENTS:
            # An outage with thousands of transitions: memory stays bounded; what is dropped
            # is counted and logged, and the status (retried, newest wins) still tells.
            self.metrics.events_dropped.labels(event.reason).inc()
            log.warning("dropping %s event for %s/%s: too many unposted", event.reason, *ref.key)
            return
        task = asyncio.get_running_loop().create_task(self._post(ref, event))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    def forget(self, ref: MonitorRef) -> None:
        self.queue.forget(ref.key)

    def fence(self, fenced: bool) -> None:
        """Hold status writes and Events while this replica may no longer be the leader."""
        self.fenced = fenced
        if fenced:
            self.queue.pause()
        else:
            self.queue.resume()

    def step_down(self) -> None:
        """Another replica leads now: its Events are its own, and writing may resume (every
        monitor was dropped, and its queued writes with it)."""
        for task in self._events:
            task.cancel()
        self.fenced = False
        self.queue.resume()

    async def close(self) -> None:
        for task in self._events:
            task.cancel()
        await asyncio.gather(*self._events, return_exceptions=True)
        await self.queue.close()

    async def _merge_patch(self, ref: MonitorRef, body: dict[str, Any]) -> None:
        await patch_status(self.api, ref, body)

    async def _post(self, ref: MonitorRef, event: EventSpec) -> None:
        now = datetime.now(UTC)
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            # Named like kubectl's recorder does (object name, a dot, a unique suffix);
            # generateName would end in a dot, which Event names may not.
            "metadata": {"name": f"{ref.name}.{time.time_ns():x}", "namespace": ref.namespace},
            "eventTime": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance[:128],
            "action": "Probe",
            "reason": event.reason,
            "type": event.type,
            "note": event.message[:MAX_MESSAGE],
            "regarding": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
        }
        deadline = time.monotonic() + EVENT_MAX_AGE
        delay = RETRY_FIRST
        while True:
            await self.queue.wait_open()
            try:
                await self.api.call(self.api.events.create_namespaced_event, ref.namespace, body)
                break
            except Exception as exc:
                if isinstance(exc, ApiException) and exc.status == 409:
                    break  # an earlier try got through after all: the name is ours
                self.metrics.api_errors.labels("event", classify_api_error(exc)).inc()
                # Refusals that a retry cannot change (invalid, namespace gone) end it; the API
                # server being away, overloaded or throttling us does not, and neither does a
                # 403: an API server that just started answers 403 until its RBAC caches are
                # filled (seen here for seconds after a restart), and RBAC may be on its way.
                final = isinstance(exc, ApiException) and exc.status in (400, 404, 422)
                final = final or time.monotonic() + delay > deadline
                log.warning(
                    "posting %s event for %s/%s failed%s: %s",
                    event.reason,
                    ref.namespace,
                    ref.name,
                    "" if final else " (will retry)",
                    describe_api_error(exc),
                )
                if final:
                    self.metrics.events_dropped.labels(event.reason).inc()
                    return
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)
        self.metrics.events_posted.labels(event.reason).inc()


def location_apply_body(ref: MonitorRef, entry: LocationStatus) -> dict[str, Any]:
    """A runner's server-side apply of its location's entry: that entry and nothing else (the
    chart's runner admission policy refuses a runner any other change)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": ref.name, "namespace": ref.namespace},
        # Without nulls: a field this location's manager no longer applies is removed by the
        # API server, and kubectl describe shows no "<nil>" rows.
        "status": {"locations": [entry.model_dump(mode="json", by_alias=True, exclude_none=True)]},
    }


class LocationReporter:
    """A runner's Reporter: server-side apply of its location's entry, within a write budget.

    Events are the controller's to post (it sees every location); a runner only logs them.
    """

    def __init__(
        self,
        api: KubeApi,
        metrics: Metrics,
        location: str,
        runner: str,
        *,
        rate: float = 20.0,
        workers: int = 4,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.location = location
        self.runner = runner
        self.field_manager = f"tcpmonitor-runner-{location}"[:128]
        self.queue = WriteQueue(self._apply, metrics, workers=workers, rate=rate)

    def write_status(self, ref: MonitorRef, report: StatusReport, *, urgent: bool) -> None:
        entry = location_entry(report.record, report.problem, self.location, self.runner)
        state = entry.state.value
        self.queue.submit(ref, location_apply_body(ref, entry), urgent=urgent, state=state)

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        self.metrics.events_left_to_controller.labels(event.reason).inc()
        log.info(
            "%s/%s %s in %s: %s",
            ref.namespace,
            ref.name,
            event.reason,
            self.location,
            event.message,
        )

    def forget(self, ref: MonitorRef) -> None:
        self.queue.forget(ref.key)

    def pause(self) -> None:
        self.queue.pause()

    def resume(self) -> None:
        self.queue.resume()

    async def close(self) -> None:
        await self.queue.close()

    async def _apply(self, ref: MonitorRef, body: dict[str, Any]) -> None:
        await patch_status(
            self.api,
            ref,
            body,
            field_manager=self.field_manager,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
