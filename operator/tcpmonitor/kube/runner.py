"""``tcpmonitor runner --location NAME``: probes its share of one location's monitors.

No controller logic: the runner watches TcpMonitors, keeps those that list its location, takes
the ones rendezvous hashing gives it among the location's live runners (their Leases), probes
them with the shared runtime, and server-side-applies only its location's entry of
``status.locations``, within a write budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from .. import GROUP, PLURAL, VERSION
from ..api import TcpMonitor
from ..locations.runner_share import RunnerShard
from ..scheduling.runtime import Key, MonitorRef, MonitorRuntime
from ..telemetry.metrics import Metrics
from .api_client import KubeApi, describe_api_error, load_credentials
from .api_health import ApiReadiness
from .handlers import parse_monitor
from .leases import RunnerLease
from .material_reader import ApiResolver
from .policy_source import policy_hooks
from .process import ProcessOptions, run_watching
from .status_writer import LocationReporter

log = logging.getLogger(__name__)


class ShardSink:
    def __init__(self, shard: RunnerShard) -> None:
        self.shard = shard

    async def apply(self, monitor: TcpMonitor) -> None:
        await self.shard.observe(monitor.key, monitor)

    def remove(self, key: Key) -> None:
        self.shard.forget(key)

    def invalid(self, ref: MonitorRef, message: str) -> None:
        log.warning("%s/%s is invalid: %s", ref.namespace, ref.name, message)


REJOIN_READS = 5


async def read_monitors(api: KubeApi, namespaces: list[str]) -> dict[Key, TcpMonitor] | None:
    """Every watched TcpMonitor as stored now, or None when it cannot be read (after a few
    tries a second apart): a rejoining runner then goes by what its watch delivered."""
    for attempt in range(REJOIN_READS):
        try:
            if namespaces:
                items: list[dict[str, Any]] = []
                for namespace in namespaces:
                    listed: Any = await api.call(
                        api.custom.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        namespace,
                        PLURAL,
                    )
                    items.extend(listed["items"])
            else:
                listed = await api.call(
                    api.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL
                )
                items = listed["items"]
        except Exception as exc:
            log.warning("reading TcpMonitors to rejoin failed: %s", describe_api_error(exc))
            if attempt + 1 < REJOIN_READS:
                await asyncio.sleep(1.0)
            continue
        # Thousands of objects: validated in a worker thread, not on the loop that probes.
        return await asyncio.to_thread(_parse_all, items)
    return None


def _parse_all(items: list[dict[str, Any]]) -> dict[Key, TcpMonitor]:
    monitors: dict[Key, TcpMonitor] = {}
    for body in items:
        with contextlib.suppress(ValidationError):
            monitor = parse_monitor(body)
            monitors[monitor.key] = monitor
    return monitors


async def run_runner(options: ProcessOptions, *, location: str, write_budget: float) -> int:
    load_credentials(options.kubeconfig)
    api = KubeApi()
    metrics = Metrics()
    reporter = LocationReporter(api, metrics, location, options.identity, rate=write_budget)
    runtime = MonitorRuntime(
        reporter, ApiResolver(api), metrics, options.settings, policy=options.policy
    )
    shard = RunnerShard(runtime, location, options.identity, writes=reporter)
    lease = RunnerLease(
        api, options.lease_namespace, options.identity, location, duration=options.lease_duration
    )
    pending: set[asyncio.Task[None]] = set()

    def in_order(step: Callable[[], Awaitable[None]]) -> None:
        # Membership changes and rejoining run one after another, in the order they came.
        previous = list(pending)

        async def after_previous() -> None:
            await asyncio.gather(*previous, return_exceptions=True)
            await step()

        task = asyncio.get_running_loop().create_task(after_previous())
        pending.add(task)
        task.add_done_callback(pending.discard)

    def members_changed(members: list[str]) -> None:
        in_order(lambda: shard.set_members(members))

    async def rejoin() -> None:
        current = await read_monitors(api, options.namespaces)
        await shard.rejoin(current)

    def fenced(fence: bool) -> None:
        if fence:
            shard.fence()
        else:
            in_order(rejoin)

    def describe() -> str:
        return f"{len(shard.owned)} of {len(shard.known)} monitors in {location}"

    async def cleanup() -> None:
        await lease.release()  # the others take over at once, not after the lease expires
        await runtime.close()
        await reporter.close()
        api.close()

    log.info("runner %s in location %s", options.identity, location)
    return await run_watching(
        options,
        ShardSink(shard),
        metrics,
        describe=describe,
        background=[lease.run(members_changed, fenced, metrics)],
        cleanup=cleanup,
        alive=runtime.health,
        api_readiness=ApiReadiness(api, options.namespaces, metrics),
        **policy_hooks(api, options.watched_policy),
    )
