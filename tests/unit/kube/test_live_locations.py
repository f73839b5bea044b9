"""The controller's view of which locations have a live runner, from the runners' Leases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tcpmonitor.kube.leases import LOCATION_LABEL, ROLE_LABEL
from tcpmonitor.kube.operator import LiveLocations

from .test_leases import NS, MemoryApi, kube

GRACE = 0.3
PERIOD = 0.02


def runner_lease(api: MemoryApi, name: str, location: str) -> None:
    labels = {ROLE_LABEL: "runner", LOCATION_LABEL: location}
    api.coordination.put(name, name, datetime.now(UTC), labels=labels)


def test_a_location_is_not_called_missing_before_its_runner_had_a_lease_duration() -> None:
    """At start-up a runner may write its Lease after the controller's first look: until a
    lease duration has passed, no location is reported missing, live ones are reported."""

    async def scenario() -> list[set[str] | None]:
        api = MemoryApi()
        live = LiveLocations(kube(api), NS, PERIOD, GRACE)
        seen: list[set[str] | None] = []
        task = asyncio.create_task(live.run(lambda: seen.append(live.current)))
        await asyncio.sleep(GRACE / 3)
        assert live.current is None  # nothing missing yet, though no Lease exists
        runner_lease(api, "eu-1", "eu")  # the runner writes its Lease late
        await asyncio.sleep(GRACE)
        task.cancel()
        return seen

    assert asyncio.run(scenario()) == [{"eu"}]


def test_after_a_failed_read_a_location_is_not_dropped_before_a_new_lease_duration() -> None:
    async def scenario() -> tuple[set[str] | None, set[str] | None]:
        api = MemoryApi()
        runner_lease(api, "eu-1", "eu")
        live = LiveLocations(kube(api), NS, PERIOD, GRACE)
        task = asyncio.create_task(live.run(lambda: None))
        await asyncio.sleep(GRACE + 5 * PERIOD)
        settled = live.current
        api.coordination.failing = True  # the API server goes away ...
        await asyncio.sleep(3 * PERIOD)
        api.coordination.failing = False  # ... and comes back before the runner has renewed
        api.coordination.objects.clear()
        await asyncio.sleep(GRACE / 2)
        during = live.current
        await asyncio.sleep(GRACE)
        after = live.current
        task.cancel()
        assert after == set()  # a lease duration later the missing runner is reported
        return settled, during

    settled, during = asyncio.run(scenario())
    assert settled == {"eu"} and during == {"eu"}
