"""``tcpmonitor operator``: kopf watching TcpMonitors, feeding the shared runtime.

kopf is configured so that it writes nothing of its own into our objects (progress and
diff-base would live in annotations under our prefix, but the only handler is a raw event
handler), posts no Events of its own, uses no cluster peering objects, and needs no CRD
scanning permissions. The watch has an inactivity timeout so a silently dead connection is
noticed. SIGTERM stops everything within a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import kopf

from .. import GROUP
from ..http_endpoints import start_http
from ..metrics import Metrics
from ..runtime import MonitorRuntime, RuntimeSettings
from .api_client import KubeApi, load_credentials
from .handlers import build_registry
from .secret_references import ApiResolver
from .status_writer import KubeReporter

log = logging.getLogger(__name__)

WATCH_SERVER_TIMEOUT = 300  # seconds: the API server closes the watch, kopf re-opens it
WATCH_INACTIVITY_TIMEOUT = 600  # seconds without any event or bookmark: reconnect
SHUTDOWN_GRACE = 5.0


@dataclass
class OperatorOptions:
    namespaces: list[str]
    kubeconfig: str | None
    metrics_address: str
    metrics_port: int
    settings: RuntimeSettings


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.enabled = False
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_SERVER_TIMEOUT + 30
    settings.watching.inactivity_timeout = WATCH_INACTIVITY_TIMEOUT
    settings.process.ultimate_exiting_timeout = SHUTDOWN_GRACE
    return settings


async def run_operator(options: OperatorOptions) -> int:
    load_credentials(options.kubeconfig)
    metrics = Metrics()
    api = KubeApi()
    reporter = KubeReporter(api, metrics)
    runtime = MonitorRuntime(reporter, ApiResolver(api), metrics, options.settings)
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    # kopf installs its own SIGTERM/SIGINT handlers and returns when one arrives; a stop flag
    # of ours beside them leaves kopf waiting on that flag until its ultimate-exit timer kills
    # the process, so kopf alone owns the signals.
    operator_task = loop.create_task(
        kopf.operator(
            registry=build_registry(runtime),
            settings=kopf_settings(),
            namespaces=options.namespaces,
            clusterwide=not options.namespaces,
            standalone=True,
            ready_flag=ready,
        )
    )

    def health() -> tuple[bool, str]:
        if operator_task.done():
            return False, "the watch loop has stopped"
        return True, f"ok: {len(runtime)} monitors"

    def readiness() -> tuple[bool, str]:
        return (ready.is_set(), "ready" if ready.is_set() else "starting")

    http = await start_http(
        metrics.registry,
        host=options.metrics_address,
        port=options.metrics_port,
        health=health,
        ready=readiness,
    )
    scope = ", ".join(options.namespaces) if options.namespaces else "all namespaces"
    log.info("watching TcpMonitors in %s; metrics on :%d", scope, options.metrics_port)
    try:
        await operator_task
    except Exception:
        log.exception("the operator stopped with an error")
        return 1
    finally:
        await runtime.close()
        await reporter.close()
        await http.cleanup()
        api.close()
    log.info("stopped")
    return 0
