"""One configured Kubernetes client, and a small thread pool for its blocking calls.

The official client is synchronous; a dedicated pool keeps its calls off the event loop that
probes, and bounds how many requests this process has in flight against the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import kopf
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

REQUEST_TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts of every request: the client has none by default, and a request
stuck on a half-open connection (a partition, an API server killed mid-request) would hold a
pool thread, and for a status write its monitor's queue, forever; worse, it could land long
after newer writes. A write that times out is retried like any failed one."""

API_ERROR_REASONS = (
    "unreachable",
    "timeout",
    "throttled",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "gone",
    "invalid",
    "server_error",
    "other",
)
"""The fixed set of reasons a request failed, as the metrics' label values."""

_STATUS_REASONS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    429: "throttled",
    400: "invalid",
    422: "invalid",
}


def load_credentials(kubeconfig: str | None) -> None:
    """In-cluster service account when available, else kubeconfig (``--kubeconfig`` first).

    ``KUBECONFIG`` is set too, so kopf's own login finds the same credentials.
    """
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
        config.load_kube_config(config_file=kubeconfig)
        return
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


class KubeApi:
    """Typed API groups over one ApiClient, with ``call`` to run a request off the loop."""

    def __init__(
        self,
        api_client: Any | None = None,
        *,
        workers: int = 8,
        timeout: tuple[float, float] = REQUEST_TIMEOUT,
    ) -> None:
        self.client = api_client or client.ApiClient()
        self.core = client.CoreV1Api(self.client)
        self.custom = client.CustomObjectsApi(self.client)
        self.events = client.EventsV1Api(self.client)
        self.coordination = client.CoordinationV1Api(self.client)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube-api")
        self._timeout = timeout

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one request in the pool, with a connect and a read timeout unless given."""
        kwargs.setdefault("_request_timeout", self._timeout)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def connection_info() -> kopf.ConnectionInfo:
    """kopf credentials taken from the client configuration loaded by ``load_credentials``.

    kopf's own ``login_via_client`` re-reads ``~/.kube/config`` (the kubernetes package fixes
    its default path at import time), which would ignore ``--kubeconfig``.
    """
    cfg = client.Configuration.get_default_copy()
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def classify_api_error(exc: BaseException) -> str:
    """One of API_ERROR_REASONS: what an on-call person needs to tell the faults apart."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status >= 500:
            return "server_error"
        return _STATUS_REASONS.get(status, "unreachable" if status == 0 else "other")
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # the client's retries gave up: what made the last one fail
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "unreachable"  # a subclass of urllib3's timeout error, for history's sake
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return "unreachable"
    return "other"


def describe_api_error(exc: BaseException) -> str:
    """One line for a log: status, reason and the API server's own message; no headers."""
    if isinstance(exc, ApiException):
        head = f"{exc.status} {exc.reason or ''}".strip()
        message = ""
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(exc.body or "{}").get("message") or ""
        return f"{head}: {message}" if message else head
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        # "HTTPSConnectionPool(host=..., port=...): Max retries exceeded with url: ... (Caused
        # by NewConnectionError(...: [Errno 111] Connection refused))": the last part says it.
        cause = str(exc.reason).rsplit(": ", 1)[-1]
        return f"{classify_api_error(exc)}: {cause}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
