"""Readiness from a light read, and kopf's watch failures counted from its log lines."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from tcpmonitor.kube.api_client import KubeApi
from tcpmonitor.kube.api_health import (
    KOPF_WATCH_LOGGER,
    ApiReadiness,
    count_kopf_watch_failures,
    kopf_failure_reason,
)
from tcpmonitor.telemetry.metrics import Metrics


class ListingApi:
    """The two list calls ApiReadiness makes, answering from a script."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None
        self.calls: list[tuple[Any, ...]] = []
        self.custom = self

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._answer(args, kwargs)

    def list_cluster_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._answer(args, kwargs)

    def _answer(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((*args, kwargs.get("limit")))
        if self.fail is not None:
            raise self.fail
        return {"items": []}

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


def ready_value(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("tcpmonitor_api_ready")


def test_readiness_follows_the_last_read_and_says_why_not() -> None:
    async def scenario() -> None:
        api = ListingApi()
        metrics = Metrics()
        readiness = ApiReadiness(KubeApi.__new__(KubeApi), ["a", "b"], metrics)
        readiness.api = api  # type: ignore[assignment]
        assert readiness.verdict() == (False, "not checked yet")
        await readiness.check()
        assert readiness.verdict() == (True, "ok") and ready_value(metrics) == 1
        forbidden = ApiException(status=403, reason="Forbidden")
        api.fail = forbidden
        await readiness.check()
        ok, why = readiness.verdict()
        assert not ok and "forbidden" in why and ready_value(metrics) == 0
        errors = metrics.registry.get_sample_value(
            "tcpmonitor_api_errors_total", {"operation": "read", "reason": "forbidden"}
        )
        assert errors == 1
        api.fail = None
        await readiness.check()
        assert readiness.verdict()[0]
        # One namespace per check, in turn, and one object each.
        assert [c[2] for c in api.calls] == ["a", "b", "a"]
        assert {c[-1] for c in api.calls} == {1}

    asyncio.run(scenario())


def test_kopf_watch_restarts_and_failed_requests_become_metrics() -> None:
    metrics = Metrics()
    logger = logging.getLogger(KOPF_WATCH_LOGGER)
    before = logger.level
    counter = count_kopf_watch_failures(metrics)
    try:
        logger.debug("Restarting the watch-stream for tcpmonitors.v1alpha1.tcpmonitor.dev.")
        logger.error(
            "Request attempt #1/13 failed; will retry: GET https://x/apis -> "
            "APITooManyRequestsError(429, ...)"
        )
        logger.error(
            "Request attempt #13/13 failed; escalating: GET https://x/apis -> "
            "ClientConnectorError(ConnectionKey(host='127.0.0.1'))"
        )

        def value(name: str, labels: dict[str, str]) -> float | None:
            return metrics.registry.get_sample_value(name, labels)

        assert value("tcpmonitor_watch_restarts_total", {"reason": "expired"}) == 1
        assert value("tcpmonitor_watch_restarts_total", {"reason": "failed"}) == 1
        throttled = {"operation": "watch", "reason": "throttled"}
        assert value("tcpmonitor_api_errors_total", throttled) == 1
        unreachable = {"operation": "watch", "reason": "unreachable"}
        assert value("tcpmonitor_api_errors_total", unreachable) == 1
    finally:
        logger.removeFilter(counter)
        logger.setLevel(before)


def test_debug_lines_opened_for_counting_are_not_shown_at_info_level() -> None:
    metrics = Metrics()
    logger = logging.getLogger(KOPF_WATCH_LOGGER)
    before = logger.level
    logger.setLevel(logging.INFO)
    counter = count_kopf_watch_failures(metrics)
    try:
        record = logger.makeRecord(
            logger.name, logging.DEBUG, __file__, 1, "Restarting the watch-stream", (), None
        )
        assert counter.filter(record) is False
        warning = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "Request attempt #1 failed; will retry",
            (),
            None,
        )
        assert counter.filter(warning) is True
    finally:
        logger.removeFilter(counter)
        logger.setLevel(before)


def test_kopf_exception_names_map_to_our_reasons() -> None:
    assert kopf_failure_reason("-> APIForbiddenError(403)") == "forbidden"
    assert kopf_failure_reason("-> ServerDisconnectedError()") == "unreachable"
    assert kopf_failure_reason("-> TimeoutError()") == "timeout"
    assert kopf_failure_reason("-> APIServerError(500)") == "server_error"
    assert kopf_failure_reason("-> Weird()") == "other"
