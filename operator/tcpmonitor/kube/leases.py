"""coordination.k8s.io Leases: runner membership per location, and one active controller.

Runners each renew a Lease of their own labelled with their location; the live members of a
location are the unexpired Leases carrying its label. A runner that stops cleanly deletes its
Lease, so the others take over at once instead of after the lease duration. The controller
takes one shared Lease (leader election); a standby waits for it to expire or be released.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from .. import GROUP
from ..locations.assignment import Membership, live_members
from ..telemetry.metrics import Metrics
from .api_client import KubeApi, classify_api_error, describe_api_error

log = logging.getLogger(__name__)

LOCATION_LABEL = f"{GROUP}/location"
ROLE_LABEL = f"{GROUP}/role"


def lease_name(prefix: str, identity: str) -> str:
    """A valid object name for ``identity`` (pod names already are; host names may not be)."""
    clean = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")
    return f"{prefix}-{clean}"[:253].rstrip("-")


def _micro_time(moment: datetime) -> str:
    # The kubernetes client re-serialises the string through datetime.isoformat(), which drops
    # the fraction when it is zero, and the API server then refuses the MicroTime: never zero.
    moment = moment.astimezone(UTC)
    if moment.microsecond == 0:
        moment = moment.replace(microsecond=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def lease_body(
    name: str,
    namespace: str,
    labels: dict[str, str],
    spec: dict[str, Any],
    resource_version: str | None = None,
) -> dict[str, Any]:
    """A Lease object; with ``resource_version`` the replace is refused if somebody wrote since."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": spec,
    }


def membership(lease: Any) -> Membership | None:
    """A runner's Lease as a membership; None for a Lease nobody holds or never renewed (a
    released one): it counts for no location."""
    renewed = parse_time(lease.spec.renew_time)
    if renewed is None or not lease.spec.holder_identity:
        return None
    return Membership(
        holder=lease.spec.holder_identity,
        location=(lease.metadata.labels or {}).get(LOCATION_LABEL, ""),
        renewed=renewed,
        duration=timedelta(seconds=lease.spec.lease_duration_seconds or 0),
    )


async def read_lease(api: KubeApi, namespace: str, name: str) -> Any | None:
    """The Lease, or None when it does not exist."""
    try:
        return await api.call(api.coordination.read_namespaced_lease, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def release_if_held(api: KubeApi, namespace: str, name: str, identity: str) -> None:
    """Delete Lease ``name`` if ``identity`` holds it; never somebody else's."""
    try:
        lease = await read_lease(api, namespace, name)
        if lease is None or lease.spec.holder_identity != identity:
            return
        await api.call(
            api.coordination.delete_namespaced_lease,
            name,
            namespace,
            body={"preconditions": {"resourceVersion": lease.metadata.resource_version}},
        )
    except ApiException as exc:
        if exc.status not in (404, 409):
            log.warning("releasing lease %s failed: %s", name, describe_api_error(exc))


class RunnerLease:
    """This runner's Lease, renewed on a period, and the live members of its location."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        identity: str,
        location: str,
        duration: float = 15.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.location = location
        self.duration = duration
        self.name = lease_name("tcpmonitor-runner", identity)
        self.members: list[str] = []

    def _body(self, now: datetime, resource_version: str | None = None) -> dict[str, Any]:
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": _micro_time(now),
        }
        labels = {LOCATION_LABEL: self.location, ROLE_LABEL: "runner"}
        return lease_body(self.name, self.namespace, labels, spec, resource_version)

    async def renew(self) -> None:
        now = datetime.now(UTC)
        coordination = self.api.coordination
        current = await read_lease(self.api, self.namespace, self.name)
        if current is None:
            await self.api.call(
                coordination.create_namespaced_lease, self.namespace, self._body(now)
            )
            return
        await self.api.call(
            coordination.replace_namespaced_lease,
            self.name,
            self.namespace,
            self._body(now, current.metadata.resource_version),
        )

    async def live(self) -> list[str]:
        leases: Any = await self.api.call(
            self.api.coordination.list_namespaced_lease,
            self.namespace,
            label_selector=f"{ROLE_LABEL}=runner,{LOCATION_LABEL}={self.location}",
        )
        memberships = [m for lease in leases.items if (m := membership(lease)) is not None]
        return live_members(memberships, self.location, datetime.now(UTC))

    async def run(
        self,
        on_change: Callable[[list[str]], None],
        on_fenced: Callable[[bool], None] = lambda fenced: None,
        metrics: Metrics | None = None,
    ) -> None:
        """Renew and watch membership until cancelled; errors are retried, never fatal.

        A quarter of the lease duration: renewals survive a missed beat, and a dead member is
        noticed at most a quarter duration after its Lease expired.

        Fencing: when no renewal succeeded for the lease duration minus one period, the others
        may soon take this runner's monitors, so ``on_fenced(True)`` (hold writes; probing goes
        on, an outage of the whole API server must not lose what happened meanwhile). Once a
        renewal succeeds again, membership is reported one period later, when the others have
        seen the renewed Lease and handed back what they took, then ``on_fenced(False)``.
        """
        period = self.duration / 4
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()
        keep_until = -1.0
        fenced = rejoining = False
        while True:
            try:
                await self.renew()
                renewed_at = loop.time()
                if fenced and not rejoining:
                    log.info("lease %s renewed again; rejoining %s", self.name, self.location)
                    rejoining = True
                    keep_until = loop.time() + self.duration
                else:
                    members = await self.live()
                    if loop.time() < keep_until:
                        # Just back from an outage: the others were cut off as long as this
                        # runner and may not have renewed yet. Their Leases look expired, but
                        # taking their monitors now would have two runners probing and writing
                        # the same entries; they keep their share for a lease duration.
                        members = sorted({*members, *self.members})
                    if self.identity not in members:
                        members = sorted({*members, self.identity})
                    if members != self.members:
                        log.info("location %s: runners %s", self.location, ", ".join(members))
                        self.members = members
                        on_change(members)
                    if fenced:
                        fenced = rejoining = False
                        on_fenced(False)
            except Exception as exc:
                if metrics is not None:
                    metrics.api_errors.labels("lease", classify_api_error(exc)).inc()
                log.warning("lease renewal for %s failed: %s", self.name, describe_api_error(exc))
                rejoining = False
                if not fenced and loop.time() - renewed_at > self.duration - period:
                    log.warning(
                        "lease %s not renewed for %.0fs: holding status writes until it is",
                        self.name,
                        loop.time() - renewed_at,
                    )
                    fenced = True
                    on_fenced(True)
            await asyncio.sleep(period)

    async def release(self) -> None:
        """Give the Lease up at once, so others take over without waiting for it to expire."""
        await release_if_held(self.api, self.namespace, self.name, self.identity)


class LostLeadership(Exception):
    """Another controller holds the Lease now; this process must stop acting."""


class LeaderElection:
    """One active controller: take the shared Lease when free or expired, renew it, release it."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        identity: str,
        name: str = "tcpmonitor-controller",
        duration: float = 15.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.duration = duration
        # The Lease record last seen and when (loop time), for _expired.
        self._observed: tuple[tuple[Any, ...], float] | None = None

    def _spec(self, now: datetime, transitions: int, acquired: datetime) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "acquireTime": _micro_time(acquired),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    async def _try(self) -> bool:
        now = datetime.now(UTC)
        coordination = self.api.coordination
        labels = {ROLE_LABEL: "controller"}
        lease = await read_lease(self.api, self.namespace, self.name)
        if lease is None:
            body = lease_body(self.name, self.namespace, labels, self._spec(now, 0, now))
            try:
                await self.api.call(coordination.create_namespaced_lease, self.namespace, body)
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False  # another controller created it first
                raise
            return True
        spec = lease.spec
        holder = spec.holder_identity
        abandoned = not holder or spec.renew_time is None  # released, or never renewed
        if holder != self.identity and not abandoned and not self._expired(lease):
            return False
        transitions = (spec.lease_transitions or 0) + (0 if holder == self.identity else 1)
        acquired = parse_time(spec.acquire_time) if holder == self.identity else now
        body = lease_body(
            self.name,
            self.namespace,
            labels,
            self._spec(now, transitions, acquired or now),
            lease.metadata.resource_version,
        )
        try:
            await self.api.call(
                coordination.replace_namespaced_lease, self.name, self.namespace, body
            )
        except ApiException as exc:
            if exc.status == 409:
                return False  # somebody renewed or took it between our read and write
            raise
        return True

    def _expired(self, lease: Any) -> bool:
        """Whether the holder let the Lease lapse, by this process's own clock.

        As client-go does, the Lease counts as expired once this process has seen the same
        record (holder, renewTime, resourceVersion) for a whole lease duration, not by
        comparing the holder's renewTime with the local clock (clocks of two nodes differ).
        Unlike client-go, the watch starts again after a failed read: when the API server was
        away, the holder gets a whole lease duration after its return to renew, instead of
        losing the Lease to whichever replica reads it first.
        """
        record = (
            lease.spec.holder_identity,
            str(lease.spec.renew_time),
            lease.metadata.resource_version,
        )
        now = asyncio.get_running_loop().time()
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)
            return False
        return now - self._observed[1] > (lease.spec.lease_duration_seconds or 0)

    async def acquire(self) -> None:
        """Wait until this process is the active controller."""
        announced = False
        while True:
            try:
                if await self._try():
                    log.info("became the active controller (%s)", self.identity)
                    return
            except Exception as exc:
                self._observed = None  # see _expired
                log.warning("leader election: %s", describe_api_error(exc))
            if not announced:
                log.info("standing by: another controller holds lease %s", self.name)
                announced = True
            await asyncio.sleep(self.duration / 5)

    async def keep(self, on_fenced: Callable[[bool], None] = lambda fenced: None) -> None:
        """Renew until cancelled; raise LostLeadership when the Lease is gone to another.

        While renewals fail (the API server away, throttling, a partition) this replica cannot
        know whether a standby took over: after the lease duration minus one renewal period it
        calls ``on_fenced(True)`` to hold its writes, and ``on_fenced(False)`` once it renews
        its own Lease again. It keeps running meanwhile (an outage of the whole API server is
        not a reason to exit); only seeing another holder ends it.
        """
        period = self.duration / 3
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()
        fenced = False
        while True:
            await asyncio.sleep(period)
            try:
                held = await self._try()
            except Exception as exc:
                log.warning("leader election renewal: %s", describe_api_error(exc))
                held = None
            if held:
                renewed_at = loop.time()
                if fenced:
                    log.info("lease %s renewed again: acting as the controller", self.name)
                    fenced = False
                    on_fenced(False)
                continue
            if held is False:
                raise LostLeadership(f"lease {self.name} is held by another controller")
            if not fenced and loop.time() - renewed_at > self.duration - period:
                log.warning(
                    "lease %s not renewed for %.0fs: holding writes until it is",
                    self.name,
                    loop.time() - renewed_at,
                )
                fenced = True
                on_fenced(True)

    async def release(self) -> None:
        """Give the Lease up at once, so others take over without waiting for it to expire."""
        await release_if_held(self.api, self.namespace, self.name, self.identity)
