"""``tcpmonitor run -f PATH``: the same runtime against manifests on disk, no cluster.

Transitions are log lines, metrics and health are served over HTTP, SIGHUP re-reads the files
(adding, changing and removing monitors), SIGTERM/SIGINT stop cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..api import TcpMonitorSpec
from ..api.printable import printable
from ..api.result import MAX_MESSAGE
from ..policy import PolicyBook
from ..probe import ProbeMaterial
from ..probe.material import resolve_material
from ..reporting import EventSpec
from ..scheduling.runtime import MonitorRef, MonitorRuntime, RuntimeSettings, StatusReport
from ..telemetry.http_endpoints import start_http
from ..telemetry.metrics import Metrics
from .manifests import ManifestSet, load_manifests
from .policy_files import fill_book, policy_book, read_policy_files

log = logging.getLogger("tcpmonitor.standalone.run")


class LogReporter:
    """Every Event becomes one line on stdout. No status is kept: with no API server to hold
    it, the log lines and the metrics are what a user of ``run`` sees."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics

    def write_status(self, ref: MonitorRef, report: StatusReport, *, urgent: bool) -> None:
        pass

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        # Exactly one line per Event: a message quoting a target must not end it early and
        # forge the next one ("... Normal TargetUp prod/payments-db: ...").
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = printable(event.message, MAX_MESSAGE)
        print(
            f"{stamp} {event.type} {event.reason} {ref.namespace}/{ref.name}: {message}",
            flush=True,
        )
        if self.metrics is not None:
            self.metrics.events_posted.labels(event.reason).inc()

    def forget(self, ref: MonitorRef) -> None:
        pass


class ManifestResolver:
    """References resolve against Secrets and ConfigMaps found in the same files."""

    def __init__(self, manifests: ManifestSet) -> None:
        self.manifests = manifests

    async def resolve(self, spec: TcpMonitorSpec, namespace: str) -> ProbeMaterial:
        return resolve_material(spec, namespace, self.manifests)


def _load(paths: list[Path]) -> ManifestSet | None:
    manifests = load_manifests(paths, deep=False)
    for problem in manifests.problems:
        print(f"tcpmonitor: {problem}", file=sys.stderr)
    return None if manifests.problems else manifests


async def run_standalone(
    paths: list[Path],
    *,
    host: str,
    port: int,
    settings: RuntimeSettings,
    policy_paths: list[Path] | None = None,
    deny_uncovered: bool = False,
    allowed: list[str] | None = None,
) -> int:
    manifests = _load(paths)
    if manifests is None:
        return 2
    policy: PolicyBook | None = None
    if policy_paths:
        policy = policy_book(policy_paths, deny_uncovered=deny_uncovered, allowed=allowed or [])
        if policy is None:
            return 2
    resolver = ManifestResolver(manifests)
    metrics = Metrics()
    reporter = LogReporter(metrics)
    runtime = MonitorRuntime(reporter, resolver, metrics, settings, policy=policy)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    applied: set[tuple[str, str]] = set()
    reloading: asyncio.Task[None] | None = None
    reload_again = False

    async def apply_all(current: ManifestSet) -> None:
        resolver.manifests = current
        wanted = {item.monitor.key for item in current.monitors}
        for key in applied - wanted:
            runtime.remove(key)
        applied.intersection_update(wanted)
        for item in current.monitors:
            await runtime.apply(item.monitor)
            applied.add(item.monitor.key)

    async def reload_files() -> None:
        # Reading and parsing happen in a thread: a file of tens of megabytes takes seconds,
        # and the monitors already running keep their schedule meanwhile.
        nonlocal reload_again
        while True:
            reload_again = False
            policies: ManifestSet | None = None
            try:
                current = await asyncio.to_thread(_load, paths)
                if policy is not None and policy_paths:
                    policies = await asyncio.to_thread(read_policy_files, policy_paths)
            except Exception:  # a loader bug must not end reloads, nor the probing
                log.exception("reload failed; still probing the old set")
                current = None
            if current is None or (policy is not None and policies is None):
                log.error("reload refused: fix the problems above; still probing the old set")
            else:
                if policy is not None and policies is not None:
                    fill_book(policy, policies)  # before the monitors: no probe under the old
                await apply_all(current)
                print(f"reloaded {len(current.monitors)} monitor(s)", flush=True)
            if not reload_again:
                return

    def reload() -> None:
        nonlocal reloading, reload_again
        if reloading is not None and not reloading.done():
            reload_again = True  # files changed during this reload: read them once more after
            return
        reloading = loop.create_task(reload_files())

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        http = await start_http(metrics.registry, host=host, port=port, health=runtime.health)
    except OSError as exc:
        print(f"tcpmonitor: cannot serve metrics on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(
        f"probing {len(manifests.monitors)} monitor(s); metrics and health on "
        f"http://{host}:{port}/metrics and /healthz",
        flush=True,
    )
    try:
        await apply_all(manifests)
        await stop.wait()
    finally:
        if reloading is not None:
            reloading.cancel()
        await runtime.close()
        await http.cleanup()
    return 0
