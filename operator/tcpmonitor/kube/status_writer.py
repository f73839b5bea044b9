"""Writes status through the status subresource, and Events, with bounded API load.

Writes are queued per monitor and coalesced (only the newest status of a monitor is sent),
transitions go before heartbeats, and a fixed number of workers bounds the requests in flight.
The operator never writes ``spec``: merge patches go to ``/status`` only.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from .. import GROUP, KIND, PLURAL, VERSION
from ..api import TcpMonitorStatus
from ..metrics import Metrics
from ..reporting import EventSpec, status_body
from ..runtime import MonitorRef
from .api_client import KubeApi

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = f"{GROUP}/operator"


def reporting_instance() -> str:
    """The pod name (downward API ``POD_NAME``) or the host name when run elsewhere."""
    return os.environ.get("POD_NAME") or socket.gethostname()


@dataclass
class _Pending:
    ref: MonitorRef
    body: dict[str, Any]
    urgent: bool


class KubeReporter:
    """The runtime's Reporter for a cluster: status patches and Events through the API."""

    def __init__(self, api: KubeApi, metrics: Metrics, *, workers: int = 4) -> None:
        self.api = api
        self.metrics = metrics
        self.instance = reporting_instance()
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._order: list[tuple[int, int, tuple[str, str]]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        # One write per monitor at a time, so an older status can never overtake a newer one.
        self._in_flight: set[tuple[str, str]] = set()
        self._tasks = [
            asyncio.get_running_loop().create_task(self._worker()) for _ in range(workers)
        ]
        self._events: set[asyncio.Task[None]] = set()

    def write_status(self, ref: MonitorRef, status: TcpMonitorStatus, *, urgent: bool) -> None:
        key = ref.key
        pending = self._pending.get(key)
        body = {"status": status_body(status)}
        if pending is not None:
            # Coalesce: the newest status wins, an urgent one keeps its place in the queue.
            pending.body, pending.ref = body, ref
            if urgent and not pending.urgent:
                pending.urgent = True
                heapq.heappush(self._order, (0, next(self._seq), key))
            return
        self._pending[key] = _Pending(ref, body, urgent)
        heapq.heappush(self._order, (0 if urgent else 1, next(self._seq), key))
        self._wakeup.set()

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        task = asyncio.get_running_loop().create_task(self._post(ref, event))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    def forget(self, ref: MonitorRef) -> None:
        self._pending.pop(ref.key, None)

    async def close(self) -> None:
        for task in [*self._tasks, *self._events]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._events, return_exceptions=True)

    def backlog(self) -> int:
        return len(self._pending)

    async def _worker(self) -> None:
        while True:
            while not self._order:
                self._wakeup.clear()
                await self._wakeup.wait()
            _, _, key = heapq.heappop(self._order)
            if key in self._in_flight:
                continue  # re-queued when the write in flight finishes: order must hold
            pending = self._pending.pop(key, None)
            if pending is None:
                continue  # already written through an earlier queue entry
            self._in_flight.add(key)
            try:
                await self._patch(pending)
            finally:
                self._in_flight.discard(key)
                newer = self._pending.get(key)
                if newer is not None:
                    heapq.heappush(self._order, (0 if newer.urgent else 1, next(self._seq), key))
                    self._wakeup.set()

    async def _patch(self, pending: _Pending) -> None:
        ref = pending.ref
        try:
            await self.api.call(
                self.api.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                pending.body,
            )
        except ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile; the watch will tell the runtime
            self.metrics.status_patches.labels("error").inc()
            log.warning(
                "status patch of %s/%s failed: %s %s",
                ref.namespace,
                ref.name,
                exc.status,
                exc.reason,
            )
            return
        except Exception as exc:
            self.metrics.status_patches.labels("error").inc()
            log.warning("status patch of %s/%s failed: %s", ref.namespace, ref.name, exc)
            return
        self.metrics.status_patches.labels("success").inc()

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
            "note": event.message[:1024],
            "regarding": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
        }
        try:
            await self.api.call(self.api.events.create_namespaced_event, ref.namespace, body)
        except Exception as exc:
            log.warning(
                "posting %s event for %s/%s failed: %s", event.reason, ref.namespace, ref.name, exc
            )
