"""``tcpmonitor runner --location NAME``: probes its share of one location's monitors.

No controller logic: the runner watches TcpMonitors, keeps those that list its location, takes
the ones rendezvous hashing gives it among the location's live runners (their Leases), probes
them with the shared runtime, and server-side-applies only its location's entry of
``status.locations``, within a write budget.
"""

from __future__ import annotations

import asyncio
import logging

from ..api import TcpMonitor
from ..locations.runner_share import RunnerShard
from ..scheduling.runtime import Key, MonitorRef, MonitorRuntime
from ..telemetry.metrics import Metrics
from .api_client import KubeApi, load_credentials
from .leases import RunnerLease
from .material_reader import ApiResolver
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


async def run_runner(options: ProcessOptions, *, location: str, write_budget: float) -> int:
    load_credentials(options.kubeconfig)
    api = KubeApi()
    metrics = Metrics()
    reporter = LocationReporter(api, metrics, location, options.identity, rate=write_budget)
    runtime = MonitorRuntime(reporter, ApiResolver(api), metrics, options.settings)
    shard = RunnerShard(runtime, location, options.identity)
    lease = RunnerLease(
        api, options.lease_namespace, options.identity, location, duration=options.lease_duration
    )
    pending: set[asyncio.Task[None]] = set()

    def members_changed(members: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(shard.set_members(members))
        pending.add(task)
        task.add_done_callback(pending.discard)

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
        background=[lease.run(members_changed)],
        cleanup=cleanup,
        alive=runtime.health,
    )
