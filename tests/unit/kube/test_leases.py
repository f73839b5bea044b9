"""Runner Leases and leader election, against an in-memory Lease store.

``MemoryLeases`` implements only the CoordinationV1Api methods the code calls, with the API
server's rules that matter to the decisions: create refuses an existing name, replace and delete
refuse a stale resourceVersion, and reads return the client's model objects, whose MicroTimes
are datetimes. Every Lease written is checked against the Kubernetes schema. Anything beyond
that (real watches, clocks of other nodes) is for tests/e2e.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar, cast

import kubernetes_validate
import pytest
from kubernetes.client import V1Lease, V1LeaseList, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from tcpmonitor.kube.api_client import KubeApi
from tcpmonitor.kube.leases import (
    LOCATION_LABEL,
    ROLE_LABEL,
    LeaderElection,
    LostLeadership,
    RunnerLease,
    _micro_time,
    lease_body,
    parse_time,
)

T = TypeVar("T")
NS = "tcpmonitor-system"


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Poll a condition on the store, which has no event to wait on."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def as_client_object(body: dict[str, Any]) -> V1Lease:
    meta, spec = body["metadata"], body.get("spec") or {}

    def micro_time(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return V1Lease(
        metadata=V1ObjectMeta(
            name=meta["name"],
            namespace=meta["namespace"],
            labels=dict(meta.get("labels") or {}),
            resource_version=meta["resourceVersion"],
        ),
        spec=V1LeaseSpec(
            holder_identity=spec.get("holderIdentity"),
            lease_duration_seconds=spec.get("leaseDurationSeconds"),
            acquire_time=micro_time(spec.get("acquireTime")),
            renew_time=micro_time(spec.get("renewTime")),
            lease_transitions=spec.get("leaseTransitions"),
        ),
    )


class MemoryLeases:
    """The CoordinationV1Api methods the Lease code calls, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []  # (verb, name)
        self.failing = False  # every request answers 500 while set
        self._versions = itertools.count(1)

    def _check(self) -> None:
        if self.failing:
            raise ApiException(status=500, reason="Internal Server Error")

    def _store(self, body: dict[str, Any]) -> None:
        kubernetes_validate.validate(body, "1.37", strict=True)
        meta = body["metadata"]
        stored = {**body, "metadata": {**meta, "resourceVersion": str(next(self._versions))}}
        self.objects[(meta["namespace"], meta["name"])] = stored

    def put(
        self,
        name: str,
        holder: str | None,
        renewed: datetime | None,
        *,
        duration: int = 15,
        labels: dict[str, str] | None = None,
        acquired: datetime | None = None,
        transitions: int | None = None,
    ) -> None:
        """Another party's write, as if it happened on the server."""
        spec: dict[str, Any] = {"leaseDurationSeconds": duration}
        if holder is not None:
            spec["holderIdentity"] = holder
        if renewed is not None:
            spec["renewTime"] = _micro_time(renewed)
        if acquired is not None:
            spec["acquireTime"] = _micro_time(acquired)
        if transitions is not None:
            spec["leaseTransitions"] = transitions
        self._store(lease_body(name, NS, labels or {}, spec))

    def get(self, name: str) -> dict[str, Any]:
        return self.objects[(NS, name)]

    def read_namespaced_lease(self, name: str, namespace: str) -> V1Lease:
        self._check()
        body = self.objects.get((namespace, name))
        if body is None:
            raise ApiException(status=404, reason="Not Found")
        return as_client_object(body)

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any]) -> None:
        self._check()
        assert body["metadata"]["namespace"] == namespace
        assert "resourceVersion" not in body["metadata"]
        if (namespace, body["metadata"]["name"]) in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.writes.append(("create", body["metadata"]["name"]))
        self._store(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self._check()
        current = self.objects.get((namespace, name))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        sent = body["metadata"].get("resourceVersion")
        if sent is not None and sent != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.writes.append(("replace", name))
        self._store(body)

    def delete_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self._check()
        current = self.objects.get((namespace, name))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        wanted = body["preconditions"]["resourceVersion"]
        if wanted != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.writes.append(("delete", name))
        del self.objects[(namespace, name)]

    def list_namespaced_lease(self, namespace: str, label_selector: str) -> V1LeaseList:
        self._check()
        wanted = dict(term.split("=", 1) for term in label_selector.split(","))
        return V1LeaseList(
            items=[
                as_client_object(body)
                for (ns, _), body in self.objects.items()
                if ns == namespace
                and all(body["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
        )


class MemoryApi:
    """KubeApi's surface used by the Lease code: ``coordination`` and ``call``."""

    def __init__(self, leases: MemoryLeases | None = None) -> None:
        self.coordination = leases or MemoryLeases()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        await asyncio.sleep(0)  # a request suspends the caller, as the thread pool does
        return fn(*args, **kwargs)


def kube(api: MemoryApi) -> KubeApi:
    return cast(KubeApi, api)


def spec_of(api: MemoryApi, name: str) -> dict[str, Any]:
    return cast(dict[str, Any], api.coordination.get(name)["spec"])


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


# The pure parts


def test_a_lease_body_carries_a_resource_version_only_for_a_replace() -> None:
    spec = {"holderIdentity": "me", "leaseDurationSeconds": 15}
    created = lease_body("l", NS, {ROLE_LABEL: "runner"}, spec)
    assert created == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": NS, "labels": {ROLE_LABEL: "runner"}},
        "spec": spec,
    }
    replaced = lease_body("l", NS, {}, spec, resource_version="42")
    assert replaced["metadata"]["resourceVersion"] == "42"
    kubernetes_validate.validate(replaced, "1.37", strict=True)


def test_lease_times_are_utc_micro_times_that_never_drop_their_fraction() -> None:
    whole_second = datetime(2026, 11, 21, 13, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert _micro_time(whole_second) == "2026-11-21T12:00:05.000001Z"
    assert _micro_time(whole_second.replace(microsecond=250)) == "2026-11-21T12:00:05.000250Z"


def test_lease_times_are_read_from_the_clients_datetimes_and_from_wire_strings() -> None:
    aware = datetime(2026, 11, 21, 12, 0, 5, 1, tzinfo=UTC)
    assert parse_time(None) is None
    assert parse_time(aware) == aware
    assert parse_time(aware.replace(tzinfo=None)) == aware  # naive means UTC
    assert parse_time("2026-11-21T12:00:05.000001Z") == aware


# Runner Leases


def test_a_runner_creates_its_lease_then_renews_it_in_place() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        lease = RunnerLease(kube(api), NS, "Runner_1.local", "eu-west", duration=10.0)
        await lease.renew()
        created = api.coordination.get("tcpmonitor-runner-runner-1-local")
        assert created["metadata"]["labels"] == {LOCATION_LABEL: "eu-west", ROLE_LABEL: "runner"}
        assert created["spec"]["holderIdentity"] == "Runner_1.local"
        assert created["spec"]["leaseDurationSeconds"] == 10
        first = parse_time(created["spec"]["renewTime"])
        await asyncio.sleep(0.002)
        await lease.renew()
        renewed = api.coordination.get(lease.name)
        assert api.coordination.writes == [("create", lease.name), ("replace", lease.name)]
        assert renewed["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
        second = parse_time(renewed["spec"]["renewTime"])
        assert first is not None and second is not None and second > first

    run(scenario)


def test_the_live_members_are_the_unexpired_runner_leases_of_the_location() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        store = api.coordination
        runner = {ROLE_LABEL: "runner"}
        eu = {**runner, LOCATION_LABEL: "eu"}
        store.put("r-b", "b", ago(2), labels=eu)
        store.put("r-a", "a", ago(14), labels=eu)  # 1 s left
        store.put("r-dead", "dead", ago(16), labels=eu)
        store.put("r-short", "short", ago(6), duration=5, labels=eu)
        store.put("r-released", None, ago(1), labels=eu)
        store.put("r-never", "never", None, labels=eu)
        store.put("r-us", "us", ago(1), labels={**runner, LOCATION_LABEL: "us"})
        store.put("ctl", "eu-controller", ago(1), labels={ROLE_LABEL: "controller"})
        lease = RunnerLease(kube(api), NS, "a", "eu")
        assert await lease.live() == ["a", "b"]

    run(scenario)


def test_a_runner_reports_membership_changes_and_survives_api_errors() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        eu = {ROLE_LABEL: "runner", LOCATION_LABEL: "eu"}
        changes: list[list[str]] = []
        lease = RunnerLease(kube(api), NS, "a", "eu", duration=0.2)  # renews every 50 ms
        task = asyncio.get_running_loop().create_task(lease.run(changes.append))
        try:
            await until(lambda: changes == [["a"]])
            api.coordination.failing = True
            await asyncio.sleep(0.12)
            api.coordination.failing = False
            api.coordination.put("r-b", "b", datetime.now(UTC), labels=eu)
            await until(lambda: len(changes) == 2)
            await asyncio.sleep(0.12)  # more renewals, no change: no more calls
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert changes == [["a"], ["a", "b"]]
        assert lease.members == ["a", "b"]

    run(scenario)


def test_releasing_deletes_the_runners_own_lease_and_never_anothers() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        lease = RunnerLease(kube(api), NS, "a", "eu")
        await lease.renew()
        await lease.release()
        assert (NS, lease.name) not in api.coordination.objects
        api.coordination.put(lease.name, "someone-else", datetime.now(UTC))
        await lease.release()
        assert spec_of(api, lease.name)["holderIdentity"] == "someone-else"
        await lease.release()  # and a second release of nothing is harmless
        await RunnerLease(kube(api), NS, "gone", "eu").release()

    run(scenario)


# Leader election


def election(api: MemoryApi, identity: str, duration: float = 15.0) -> LeaderElection:
    return LeaderElection(kube(api), NS, identity, name="ctl", duration=duration)


def test_a_controller_takes_a_free_lease() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        await asyncio.wait_for(election(api, "a").acquire(), 1.0)
        lease = api.coordination.get("ctl")
        assert lease["metadata"]["labels"] == {ROLE_LABEL: "controller"}
        spec = lease["spec"]
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 0)
        assert spec["acquireTime"] == spec["renewTime"]

    run(scenario)


def test_a_controller_renews_its_own_lease_without_counting_a_transition() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        acquired = ago(600)
        api.coordination.put("ctl", "a", ago(5), acquired=acquired, transitions=3)
        await asyncio.wait_for(election(api, "a").acquire(), 1.0)
        spec = spec_of(api, "ctl")
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 3)
        assert spec["acquireTime"] == _micro_time(acquired)
        renewed = parse_time(spec["renewTime"])
        assert renewed is not None and renewed > ago(1)

    run(scenario)


def test_a_controller_stands_by_while_another_holds_an_unexpired_lease() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        api.coordination.put("ctl", "b", ago(14), acquired=ago(60), transitions=1)
        before = api.coordination.get("ctl")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(election(api, "a").acquire(), 0.1)
        assert api.coordination.writes == []
        assert api.coordination.get("ctl") == before

    run(scenario)


@pytest.mark.parametrize(
    ("holder", "renewed"),
    [(None, ago(1)), ("b", None)],
    ids=["released-holder", "never-renewed"],
)
def test_a_controller_takes_over_an_abandoned_lease_at_once(
    holder: str | None, renewed: datetime | None
) -> None:
    async def scenario() -> None:
        api = MemoryApi()
        api.coordination.put("ctl", holder, renewed, acquired=ago(600), transitions=4)
        await asyncio.wait_for(election(api, "a").acquire(), 1.0)
        spec = spec_of(api, "ctl")
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 5)
        assert spec["acquireTime"] == spec["renewTime"]

    run(scenario)


def test_a_standby_takes_over_once_it_saw_the_lease_unrenewed_for_a_duration() -> None:
    """By its own clock: an old renewTime alone (another node's clock) is not enough."""

    async def scenario() -> None:
        api = MemoryApi()
        api.coordination.put("ctl", "b", ago(600), duration=1, acquired=ago(600), transitions=4)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(election(api, "a", duration=0.5).acquire(), 3.0)
        assert loop.time() - began >= 1.0
        spec = spec_of(api, "ctl")
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 5)

    run(scenario)


def test_after_failed_reads_a_standby_gives_the_holder_a_whole_duration_again() -> None:
    """An API server outage must not hand the Lease to whichever replica reads it first."""

    async def scenario() -> None:
        api = MemoryApi()
        api.coordination.put("ctl", "b", ago(600), duration=1)
        loop = asyncio.get_running_loop()
        task = loop.create_task(election(api, "a", duration=0.5).acquire())
        await asyncio.sleep(0.5)  # watched half a duration
        api.coordination.failing = True
        await asyncio.sleep(0.7)  # the whole duration passed, unseen
        api.coordination.failing = False
        back = loop.time()
        await asyncio.wait_for(task, 3.0)
        assert loop.time() - back >= 1.0
        assert spec_of(api, "ctl")["holderIdentity"] == "a"

    run(scenario)


@pytest.mark.parametrize("lease", ["free", "expired"])
def test_two_controllers_racing_for_the_lease_elect_exactly_one(lease: str) -> None:
    async def scenario() -> None:
        api = MemoryApi()
        if lease == "expired":
            api.coordination.put("ctl", "old", ago(30), duration=1)
        contenders = {"a": election(api, "a", 0.5), "b": election(api, "b", 0.5)}
        tasks = {
            asyncio.get_running_loop().create_task(e.acquire()): who
            for who, e in contenders.items()
        }
        done, pending = await asyncio.wait(tasks, timeout=0.1 if lease == "free" else 1.5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        assert len(done) == 1 and len(pending) == 1
        winner = tasks[done.pop()]
        assert spec_of(api, "ctl")["holderIdentity"] == winner
        assert [verb for verb, _ in api.coordination.writes] == [
            "create" if lease == "free" else "replace"
        ]

    run(scenario)


def test_the_active_controller_keeps_renewing_its_lease() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        leader = election(api, "a", duration=0.3)  # renews every 100 ms
        await leader.acquire()
        task = asyncio.get_running_loop().create_task(leader.keep())
        try:
            await until(lambda: len(api.coordination.writes) >= 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert api.coordination.writes[:3] == [
            ("create", "ctl"),
            ("replace", "ctl"),
            ("replace", "ctl"),
        ]
        assert spec_of(api, "ctl")["leaseTransitions"] == 0

    run(scenario)


def test_the_active_controller_stops_when_another_takes_the_lease() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        leader = election(api, "a", duration=0.3)
        await leader.acquire()
        api.coordination.put("ctl", "b", datetime.now(UTC), transitions=1)
        with pytest.raises(LostLeadership, match="held by another controller"):
            await asyncio.wait_for(leader.keep(), 1.0)

    run(scenario)


def test_a_controller_that_cannot_renew_holds_its_writes_and_resumes_when_it_renews() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        leader = election(api, "a", duration=0.3)  # renews every 100 ms
        await leader.acquire()
        fenced: list[tuple[bool, float]] = []
        loop = asyncio.get_running_loop()
        task = loop.create_task(leader.keep(lambda f: fenced.append((f, loop.time()))))
        try:
            await until(lambda: len(api.coordination.writes) >= 2)
            api.coordination.failing = True
            began = loop.time()
            await until(lambda: len(fenced) == 1)
            # Not before the lease duration minus a renewal period: a blip costs nothing.
            assert fenced[0][0] is True
            assert fenced[0][1] - began >= 0.3 - 0.1 - 0.02
            await asyncio.sleep(0.3)
            assert not task.done()  # an API server outage is not a reason to exit
            api.coordination.failing = False
            await until(lambda: len(fenced) == 2)
            assert fenced[1][0] is False
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert spec_of(api, "ctl")["holderIdentity"] == "a"

    run(scenario)


def test_a_runner_that_cannot_renew_is_fenced_and_rejoins_a_period_after_renewing() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        lease = RunnerLease(api, NS, "r1", "eu", duration=0.4)  # renews every 100 ms
        changes: list[list[str]] = []
        fenced: list[tuple[bool, float]] = []
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            lease.run(changes.append, lambda f: fenced.append((f, loop.time())))
        )
        try:
            await until(lambda: changes == [["r1"]])
            api.coordination.failing = True
            await until(lambda: len(fenced) == 1, within=3.0)
            assert fenced[0][0] is True
            api.coordination.failing = False
            healed = loop.time()
            await until(lambda: len(fenced) == 2, within=3.0)
            assert fenced[1][0] is False
            # One period after the first renewal: the others have seen the Lease by then.
            assert fenced[1][1] - healed >= 0.1 - 0.02
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(scenario)


def test_a_controller_releases_only_a_lease_it_holds() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        leader, standby = election(api, "a"), election(api, "b")
        await leader.acquire()
        await standby.release()
        assert spec_of(api, "ctl")["holderIdentity"] == "a"
        await leader.release()
        assert (NS, "ctl") not in api.coordination.objects
        await asyncio.wait_for(standby.acquire(), 1.0)  # free at once, no expiry to wait for
        assert spec_of(api, "ctl")["holderIdentity"] == "b"

    run(scenario)


def test_a_rejoining_runner_leaves_the_others_their_share_for_a_lease_duration() -> None:
    """Back from an outage, the others' Leases look expired because they could not renew
    either; taking their monitors at once would have two runners writing the same entries."""

    async def scenario() -> None:
        api = MemoryApi()
        api.coordination.put(
            "tcpmonitor-runner-r2",
            "r2",
            datetime.now(UTC),
            duration=1,
            labels={LOCATION_LABEL: "eu", ROLE_LABEL: "runner"},
        )
        lease = RunnerLease(api, NS, "r1", "eu", duration=0.4)  # renews every 100 ms
        changes: list[list[str]] = []
        loop = asyncio.get_running_loop()
        task = loop.create_task(lease.run(changes.append, lambda fenced: None))
        try:
            await until(lambda: changes == [["r1", "r2"]])
            api.coordination.failing = True
            await asyncio.sleep(1.2)  # fenced; r2's Lease (never renewed) has expired by now
            api.coordination.failing = False
            back = loop.time()
            await until(lambda: changes[-1] == ["r1"], within=3.0)
            # Not before a lease duration after rejoining (one period to rejoin, then kept).
            assert loop.time() - back >= 0.4
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(scenario)
