"""What every Kubernetes-facing process shares: credentials, kopf settings, HTTP, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from .. import GROUP
from ..policy import PolicyBook
from ..scheduling.runtime import RuntimeSettings
from ..telemetry.http_endpoints import start_http
from ..telemetry.metrics import Metrics
from .api_health import ApiReadiness, count_kopf_watch_failures
from .handlers import MonitorSink, build_registry

log = logging.getLogger(__name__)

WATCH_SERVER_TIMEOUT = 300  # seconds: the API server closes the watch, kopf re-opens it
WATCH_INACTIVITY_TIMEOUT = 600  # seconds without any event or bookmark: reconnect
# kopf gives tasks it considers hung a fixed 5 s to finish after a signal; the ultimate-exit
# timer (a SIGKILL of its own) must come later than that, and well before Kubernetes' 10 s.
SHUTDOWN_GRACE = 8.0
CONNECT_TIMEOUT = 5.0


class EndlessBackoff:
    """kopf's pauses between tries of a failed request: 0.5, 1, 2, 3, then 5 s for ever.

    kopf's default (1 ... 21 s, then give up) leaves a monitor created right after an API
    server restart unseen for up to 21 s, and after eight failures it raises, which ends the
    watch and with it the process: a 403 for a minute while RBAC is being installed, or an
    outage of a minute, killed the operator. Capped at 5 s and never giving up, recovery stays
    within an interval plus five seconds at the cost of one request per watched namespace
    every five seconds while the API server is away; readiness tells meanwhile. Not a sized
    collection, so that kopf counts no last attempt, and iterable afresh for every request.
    """

    FIRST = (0.5, 1.0, 2.0, 3.0)
    CAP = 5.0

    def __iter__(self) -> Iterator[float]:
        yield from self.FIRST
        yield from itertools.repeat(self.CAP)


def default_identity() -> str:
    """This process's name in Leases and Events: the pod name (downward API ``POD_NAME``), or
    host and pid outside a pod, so two processes on one machine never share a Lease."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class ProcessOptions:
    namespaces: list[str]
    kubeconfig: str | None
    metrics_address: str
    metrics_port: int
    settings: RuntimeSettings
    lease_namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "default"))
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    # The target policy (operator and runners; None: the controller, which does not probe).
    policy: PolicyBook | None = None
    # Read and watch TcpMonitorPolicies and namespaces; False (--no-policy-watch, for
    # installations without cluster-wide permissions): the built-in refusals and the default
    # action only.
    watch_policies: bool = True

    @property
    def watched_policy(self) -> PolicyBook | None:
        return self.policy if self.watch_policies else None


def kopf_settings() -> kopf.OperatorSettings:
    """kopf writes nothing of its own into our objects and needs no cluster-wide extras."""
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
    settings.networking.error_backoffs = EndlessBackoff()
    settings.networking.connect_timeout = CONNECT_TIMEOUT
    return settings


async def _until_signal(
    loop: asyncio.AbstractEventLoop, step: Coroutine[Any, Any, None], what: str
) -> bool:
    """Run ``step``; False when SIGTERM or SIGINT came first."""
    task: asyncio.Task[None] = loop.create_task(step)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped while %s", what)
        return False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return True


async def run_watching(
    options: ProcessOptions,
    sink: MonitorSink,
    metrics: Metrics,
    *,
    describe: Callable[[], str],
    background: Sequence[Coroutine[Any, Any, None]] = (),
    cleanup: Callable[[], Awaitable[None]] | None = None,
    gate: Callable[[], Coroutine[Any, Any, None]] | None = None,
    alive: Callable[[], tuple[bool, str]] | None = None,
    api_readiness: ApiReadiness | None = None,
    not_acting: Callable[[], str | None] | None = None,
    prepare: Callable[[], Coroutine[Any, Any, None]] | None = None,
    learn_namespace: Callable[[str], Awaitable[None]] | None = None,
) -> int:
    """Run kopf feeding ``sink`` until SIGTERM/SIGINT, with HTTP endpoints and helper tasks.

    kopf installs its own SIGTERM/SIGINT handlers and returns when one arrives; a stop flag of
    ours beside them would leave kopf waiting on it until its ultimate-exit timer kills the
    process, so kopf alone owns the signals.
    """
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    operator_task: asyncio.Task[None] | None = None
    helpers: list[asyncio.Task[None]] = []

    def health() -> tuple[bool, str]:
        if operator_task is None:
            return True, "standing by"
        if operator_task.done():
            return False, "the watch loop has stopped"
        if any(task.done() for task in helpers):
            return False, "a background task has stopped"
        if alive is not None and not (verdict := alive())[0]:
            return verdict
        return True, f"ok: {describe()}"

    def readiness() -> tuple[bool, str]:
        if not ready.is_set():
            # Starting can take long when the API server is away or refuses us (the target
            # policy is read before anything else): say why, not just "starting".
            if api_readiness is not None and not (verdict := api_readiness.verdict())[0]:
                return verdict
            return False, "starting"
        why = not_acting() if not_acting is not None else None
        if why is not None:
            return False, why
        if api_readiness is not None:
            return api_readiness.verdict()
        return True, "ready"

    count_kopf_watch_failures(metrics)
    checking = loop.create_task(api_readiness.run()) if api_readiness is not None else None

    http = await start_http(
        metrics.registry,
        host=options.metrics_address,
        port=options.metrics_port,
        health=health,
        ready=readiness,
    )
    code = 0
    try:
        # kopf's signal handlers are not installed yet: a SIGTERM while standing by (gate) or
        # while reading the target policy (prepare) stops here.
        for step, what in ((gate, "standing by"), (prepare, "starting")):
            if step is not None and not await _until_signal(loop, step(), what):
                return 0
        # Our long-lived tasks start before kopf: kopf waits at shutdown for every task created
        # after it started ("hung tasks") until its ultimate-exit timer SIGKILLs the process.
        helpers.extend(loop.create_task(coro) for coro in background)
        operator_task = loop.create_task(
            kopf.operator(
                registry=build_registry(sink, options.watched_policy, learn_namespace),
                settings=kopf_settings(),
                namespaces=options.namespaces,
                clusterwide=not options.namespaces,
                standalone=True,
                ready_flag=ready,
            )
        )
        scope = ", ".join(options.namespaces) if options.namespaces else "all namespaces"
        log.info("watching TcpMonitors in %s; metrics on :%d", scope, options.metrics_port)
        done, _ = await asyncio.wait([operator_task, *helpers], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not operator_task and task.exception() is not None:
                log.error("stopping: %s", task.exception())
                code = 1
        if not operator_task.done():
            operator_task.cancel()
        try:
            await operator_task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("the operator stopped with an error")
            code = 1
    finally:
        for task in [*helpers, *([checking] if checking is not None else [])]:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if checking is not None:
            await asyncio.gather(checking, return_exceptions=True)
        if cleanup is not None:
            await cleanup()
        await http.cleanup()
    log.info("stopped")
    return code
