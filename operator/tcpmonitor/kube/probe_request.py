"""Ask for a probe now and wait for it: what ``tcpmonitor probe-now`` does against a cluster.

Sets the probe-request annotation with a merge patch of ``metadata.annotations`` alone (the spec
is never written, so no generation changes and nothing else is touched), then reads the object
until ``status.lastHandledProbeRequest`` carries the value: the result in ``lastResult`` is the
one asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from .. import GROUP, PLURAL, VERSION
from ..api import TcpMonitor
from ..api.probe_request import PROBE_REQUEST_ANNOTATION
from .api_client import REQUEST_TIMEOUT, describe_api_error, load_credentials
from .handlers import parse_monitor

POLL_INTERVAL = 0.25


class ProbeRequestFailed(Exception):
    """The request could not be made or was not handled in time; the message is one line."""


@dataclass(frozen=True)
class HandledRequest:
    value: str
    monitor: TcpMonitor


def request_value(now: datetime | None = None) -> str:
    """RFC 3339 with microseconds, as Flux's ``reconcile.fluxcd.io/requestedAt``: unique
    enough that two requests in a row are two values."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_probe(
    namespace: str,
    name: str,
    *,
    kubeconfig: str | None,
    timeout: float,
    value: str | None = None,
) -> HandledRequest:
    """Annotate the monitor and wait up to ``timeout`` seconds for the request to be handled."""
    try:
        load_credentials(kubeconfig)
    except Exception as exc:
        raise ProbeRequestFailed(f"no cluster credentials: {exc}") from None
    value = value or request_value()
    api_client = client.ApiClient()
    try:
        api = client.CustomObjectsApi(api_client)
        patch = {"metadata": {"annotations": {PROBE_REQUEST_ANNOTATION: value}}}
        deadline = time.monotonic() + timeout
        _call(
            f"annotating TcpMonitor {namespace}/{name}",
            api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )
        while True:
            body = _call(
                f"reading TcpMonitor {namespace}/{name}",
                api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
            )
            status = body.get("status") or {}
            if status.get("lastHandledProbeRequest") == value:
                return HandledRequest(value, parse_monitor(body))
            if time.monotonic() + POLL_INTERVAL > deadline:
                raise ProbeRequestFailed(
                    f"TcpMonitor {namespace}/{name}: the probe request {value} was not handled "
                    f"within {timeout:g}s (is the operator, or a runner of each location, up?)"
                )
            time.sleep(POLL_INTERVAL)
    finally:
        api_client.close()


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise ProbeRequestFailed(f"{what} failed: {describe_api_error(exc)}") from None
