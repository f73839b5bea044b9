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
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


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

    def __init__(self, api_client: Any | None = None, *, workers: int = 8) -> None:
        self.client = api_client or client.ApiClient()
        self.core = client.CoreV1Api(self.client)
        self.custom = client.CustomObjectsApi(self.client)
        self.events = client.EventsV1Api(self.client)
        self.coordination = client.CoordinationV1Api(self.client)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube-api")

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
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


def describe_api_error(exc: BaseException) -> str:
    """One line for a log: status, reason and the API server's own message; no headers."""
    if isinstance(exc, ApiException):
        head = f"{exc.status} {exc.reason or ''}".strip()
        message = ""
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(exc.body or "{}").get("message") or ""
        return f"{head}: {message}" if message else head
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
