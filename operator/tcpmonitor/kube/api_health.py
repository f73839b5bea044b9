"""How this process's connection to the API server is doing: readiness and watch restarts.

Readiness tells the truth: ``/readyz`` is 200 only while a light read of what the process
watches succeeds, so an operator started while the API server is down, or before its RBAC is
in place (every list a 403), is not ready and says why, instead of answering 200 while it can
do nothing.

kopf owns the watch and keeps its failures to its log; a filter on its watching logger turns
the lines that mark a restarted watch stream or a failed request into metrics, so that the
on-call person sees "watch expired (410), listing again" and "requests throttled" on a graph.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from .. import GROUP, PLURAL, VERSION
from ..telemetry.metrics import Metrics
from .api_client import KubeApi, classify_api_error, describe_api_error

log = logging.getLogger(__name__)

READ_PERIOD = 5.0
KOPF_WATCH_LOGGER = "kopf._cogs.clients.watching"

# kopf's exception names in its "Request attempt ... failed" lines, as our reasons.
_KOPF_REASONS = (
    ("APITooManyRequestsError", "throttled"),
    ("APIForbiddenError", "forbidden"),
    ("APIUnauthorizedError", "unauthorized"),
    ("APIServerError", "server_error"),
    ("APINotFoundError", "not_found"),
    ("Timeout", "timeout"),
    ("Client", "unreachable"),  # aiohttp's ClientConnectorError, ClientOSError, ...
    ("ServerDisconnected", "unreachable"),
)
_FAILED = re.compile(r"Request attempt \S+ failed; (will retry|escalating)")


def kopf_failure_reason(message: str) -> str:
    for marker, reason in _KOPF_REASONS:
        if marker in message:
            return reason
    return "other"


class KopfWatchCounter(logging.Filter):
    """Counts kopf's watch restarts and failed requests from its log records.

    The 410 restart is logged at DEBUG, so the logger is opened to DEBUG and records below
    the level the process was configured with are counted, then dropped here.
    """

    def __init__(self, metrics: Metrics, shown_from: int) -> None:
        super().__init__()
        self.metrics = metrics
        self.shown_from = shown_from

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Restarting the watch-stream"):
            self.metrics.watch_restarts.labels("expired").inc()
        elif failed := _FAILED.search(message):
            self.metrics.api_errors.labels("watch", kopf_failure_reason(message)).inc()
            if failed.group(1) == "escalating":
                self.metrics.watch_restarts.labels("failed").inc()
        return record.levelno >= self.shown_from


def count_kopf_watch_failures(metrics: Metrics) -> KopfWatchCounter:
    logger = logging.getLogger(KOPF_WATCH_LOGGER)
    counter = KopfWatchCounter(metrics, logger.getEffectiveLevel())
    logger.addFilter(counter)
    logger.setLevel(logging.DEBUG)
    return counter


class ApiReadiness:
    """A light read (one TcpMonitor) of what the process watches, on a period.

    Namespaced processes read one namespace per period in turn: with many namespaces the
    check costs one request per period, not one per namespace.
    """

    def __init__(
        self, api: KubeApi, namespaces: list[str], metrics: Metrics, period: float = READ_PERIOD
    ) -> None:
        self.api = api
        self.namespaces = namespaces
        self.metrics = metrics
        self.period = period
        self.ok = False
        self.reason = "not checked yet"
        self._turn = 0

    async def read(self) -> None:
        if self.namespaces:
            namespace = self.namespaces[self._turn % len(self.namespaces)]
            self._turn += 1
            call: Any = self.api.custom.list_namespaced_custom_object
            await self.api.call(call, GROUP, VERSION, namespace, PLURAL, limit=1)
        else:
            call = self.api.custom.list_cluster_custom_object
            await self.api.call(call, GROUP, VERSION, PLURAL, limit=1)

    async def check(self) -> None:
        try:
            await self.read()
        except Exception as exc:
            reason = classify_api_error(exc)
            self.metrics.api_errors.labels("read", reason).inc()
            described = f"cannot read TcpMonitors ({reason}): {describe_api_error(exc)}"
            if self.ok or described != self.reason:
                log.warning("not ready: %s", described)
            self.ok, self.reason = False, described
        else:
            if not self.ok and self.reason != "not checked yet":
                log.info("ready again: TcpMonitors can be read")
            self.ok, self.reason = True, "ok"
        self.metrics.api_ready.set(1 if self.ok else 0)

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.period)

    def verdict(self) -> tuple[bool, str]:
        return self.ok, self.reason
