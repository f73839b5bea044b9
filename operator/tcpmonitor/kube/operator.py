"""``tcpmonitor operator``: the controller, and by default also the prober (all-in-one).

``--mode all-in-one`` (default) probes every monitor in this process, as one location.
``--mode controller`` probes nothing: runners (``tcpmonitor runner``) probe per location and
write ``status.locations``; the controller validates specs, aggregates the locations into the
top-level status and Events, and reports locations without live runners. With
``--leader-election`` only the holder of a Lease acts; a second replica stands by.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..api import TcpMonitor
from ..locations.controller import Controller
from ..reporting import invalid_object_event
from ..scheduling.runtime import Key, MonitorRef, MonitorRuntime
from ..telemetry.metrics import Metrics
from .api_client import KubeApi, classify_api_error, describe_api_error, load_credentials
from .api_health import ApiReadiness
from .leases import ROLE_LABEL, LeaderElection, LostLeadership, membership
from .material_reader import ApiResolver
from .policy_source import policy_hooks
from .process import ProcessOptions, run_watching
from .status_writer import KubeReporter

log = logging.getLogger(__name__)


class RuntimeSink:
    """All-in-one: the runtime probes; invalid objects get an Event."""

    def __init__(self, runtime: MonitorRuntime) -> None:
        self.runtime = runtime

    async def apply(self, monitor: TcpMonitor) -> None:
        await self.runtime.apply(monitor)

    def remove(self, key: Key) -> None:
        self.runtime.remove(key)

    def invalid(self, ref: MonitorRef, message: str) -> None:
        self.runtime.reporter.post_event(ref, invalid_object_event(message))


class ControllerSink:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    async def apply(self, monitor: TcpMonitor) -> None:
        await self.controller.apply(monitor)

    def remove(self, key: Key) -> None:
        self.controller.remove(key)

    def invalid(self, ref: MonitorRef, message: str) -> None:
        self.controller.reporter.post_event(ref, invalid_object_event(message))


class LeaderGatedSink:
    """Forwards watch events to ``inner`` only while this replica leads.

    A controller that loses its Lease (a standby took over after seeing it unrenewed for a
    lease duration, e.g. while etcd was away) steps down instead of exiting: it drops every
    monitor from ``inner`` (and with them their queued writes), keeps the newest version of
    each object from the watch, and when it leads again hands them all back at once.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.active = True
        self.latest: dict[Key, TcpMonitor] = {}

    async def apply(self, monitor: TcpMonitor) -> None:
        self.latest[monitor.key] = monitor
        if self.active:
            await self.inner.apply(monitor)

    def remove(self, key: Key) -> None:
        self.latest.pop(key, None)
        if self.active:
            self.inner.remove(key)

    def invalid(self, ref: MonitorRef, message: str) -> None:
        if self.active:
            self.inner.invalid(ref, message)

    def step_down(self) -> None:
        self.active = False
        for key in list(self.latest):
            self.inner.remove(key)

    async def take_over(self) -> None:
        self.active = True
        for monitor in list(self.latest.values()):
            await self.inner.apply(monitor)


async def lead(election: LeaderElection, sink: LeaderGatedSink, reporter: KubeReporter) -> None:
    """Keep the Lease; on losing it, stand by (not exit) until it is this replica's again."""
    while True:
        try:
            await election.keep(reporter.fence)
        except LostLeadership as exc:
            log.warning("%s: standing by", exc)
            sink.step_down()
            reporter.step_down()
            await election.acquire()
            await sink.take_over()


class LiveLocations:
    """Which locations have at least one live runner, from the runners' Leases.

    ``current`` is None ("report nothing missing") until the Leases have been seen for a whole
    lease duration: a runner that starts with the controller, or renews once the API server is
    back after an outage, has that long to write its Lease before its location is called
    unavailable. A failed read starts that wait again."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        period: float,
        grace: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.namespace = namespace
        self.period = period
        self.grace = grace
        self.current: set[str] | None = None
        self._loop = asyncio.get_running_loop()
        self._settles_at = self._loop.time() + grace

    async def read(self) -> set[str]:
        leases: Any = await self.api.call(
            self.api.coordination.list_namespaced_lease,
            self.namespace,
            label_selector=f"{ROLE_LABEL}=runner",
        )
        now = datetime.now(UTC)
        members = (membership(lease) for lease in leases.items)
        return {m.location for m in members if m is not None and m.alive(now)}

    async def run(self, on_change: Callable[[], None]) -> None:
        while True:
            try:
                live = await self.read()
            except Exception as exc:
                # The API server away, throttling, or refusing: keep the last view, try again.
                if self.metrics is not None:
                    self.metrics.api_errors.labels("lease", classify_api_error(exc)).inc()
                log.warning("listing runner leases failed: %s", describe_api_error(exc))
                self._settles_at = self._loop.time() + self.grace
            else:
                view: set[str] | None = live
                if self._loop.time() < self._settles_at:
                    # Not settled: newly live locations count, missing ones not yet.
                    view = None if self.current is None else self.current | live
                if view != self.current:
                    shown = ", ".join(sorted(live)) or "none"
                    log.info("locations with live runners: %s", shown)
                    self.current = view
                    on_change()
            await asyncio.sleep(self.period)


async def run_operator(
    options: ProcessOptions, *, mode: str = "all-in-one", leader_election: bool = False
) -> int:
    if mode == "controller":
        # The controller probes nothing: it neither reads nor watches the target policy.
        options = replace(options, policy=None)
    load_credentials(options.kubeconfig)
    api = KubeApi()
    metrics = Metrics()
    reporter = KubeReporter(api, metrics, instance=options.identity)
    resolver = ApiResolver(api)
    election = LeaderElection(
        api, options.lease_namespace, options.identity, duration=options.lease_duration
    )
    background: list[Coroutine[Any, Any, None]] = []
    runtime: MonitorRuntime | None = None
    if mode == "controller":
        live = LiveLocations(
            api,
            options.lease_namespace,
            options.lease_duration / 3,
            options.lease_duration,
            metrics,
        )
        # Runners' entries already carry each location's liveness on their heartbeat; the
        # controller refreshes its own top-level times five times less often.
        controller = Controller(
            reporter,
            resolver,
            metrics,
            lambda: live.current,
            heartbeat=options.settings.heartbeat * 5,
            min_interval=options.settings.min_interval,
        )
        sink: Any = ControllerSink(controller)
        background.append(live.run(controller.refresh))

        def describe() -> str:
            return f"{len(controller)} monitors (controller)"
    else:
        runtime = MonitorRuntime(
            reporter, resolver, metrics, options.settings, policy=options.policy
        )
        sink = RuntimeSink(runtime)

        def describe() -> str:
            return f"{len(runtime)} monitors"

    gated = LeaderGatedSink(sink)
    if leader_election:
        sink = gated
        background.append(lead(election, gated, reporter))

    async def cleanup() -> None:
        if runtime is not None:
            await runtime.close()
        await reporter.close()
        if leader_election:
            await election.release()
        api.close()

    return await run_watching(
        options,
        sink,
        metrics,
        describe=describe,
        background=background,
        cleanup=cleanup,
        gate=election.acquire if leader_election else None,
        alive=runtime.health if runtime is not None else None,
        api_readiness=ApiReadiness(api, options.namespaces, metrics),
        not_acting=lambda: not_acting(gated, reporter),
        **policy_hooks(api, options.watched_policy),
    )


def not_acting(gated: LeaderGatedSink, reporter: KubeReporter) -> str | None:
    """Why this replica is not doing its job though it runs (readiness says it), or None."""
    if not gated.active:
        return "standing by: another replica holds the Lease"
    if reporter.fenced:
        return "cannot renew its Lease: status writes and Events held"
    return None
