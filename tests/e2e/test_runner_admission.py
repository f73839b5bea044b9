"""The chart's runner admission policy on the real API server, with the runners' own tokens.

RBAC lets a runner update any Lease of the release namespace and patch any TcpMonitor's status;
the policy narrows that to its own location's Leases and its own location's entry of
``status.locations``. Each request here is sent with the token of a location's ServiceAccount,
exactly as the chart creates it, and the refusals must come from the policy (its message).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tcpmonitor import GROUP, PLURAL, VERSION
from tcpmonitor.api import (
    LocationStatus,
    MonitorState,
    ProbeResult,
    RequestSummary,
    ResponseSummary,
    Verdict,
)
from tcpmonitor.api.result import MAX_EXCERPT, MAX_MESSAGE
from tcpmonitor.api.status import MAX_RECENT_TRANSITIONS, StateChange
from tcpmonitor.kube.leases import LOCATION_LABEL, ROLE_LABEL, lease_body, lease_name
from tcpmonitor.kube.status_writer import location_apply_body
from tcpmonitor.scheduling.runtime import MonitorRef
from tests.controlplane import Cluster

from .helm.chart_release import (
    CONTROLLER_LEASE,
    Release,
    forbidden,
    identity,
    install,
    location,
    run_helm,
    runner,
)
from .operator_process import Listener, apply, eventually, status, tcpmonitor

EAST, WEST, EDGE = "east", "west", "edge"  # two locations in the cluster, one remote
POLICY_SYNC = 20.0  # the API server applies a new policy once its informer has it


@pytest.fixture(scope="module")
def release(
    control_plane: Cluster, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    namespace = f"tcpm-vap-{uuid.uuid4().hex[:8]}"
    home = tmp_path_factory.mktemp("helm")
    control_plane.kubectl("create", "namespace", namespace, check=True)
    installed = install(
        control_plane,
        helm,
        home,
        namespace,
        "vap",
        *("--set", f"locations[0].name={EAST}", "--set", "locations[0].replicas=1"),
        *("--set", f"locations[1].name={WEST}", "--set", "locations[1].replicas=1"),
        *("--set", f"remoteLocations[0].name={EDGE}"),
    )
    yield installed
    run_helm(helm, control_plane, home, "uninstall", "vap", "--namespace", namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


class Runner:
    """The API as the runners of a location see it: their ServiceAccount's token."""

    def __init__(self, cluster: Cluster, release: Release, name: str, directory: Path) -> None:
        self.location = name
        self.namespace = release.namespace
        if name == EDGE:
            account = f"{release.name}-tcpmonitor-operator-remote-{EDGE}"
            assert account in release.all("ServiceAccount")
        else:
            account = release.service_account("runner", name)
        self.kubeconfig = identity(cluster, release.namespace, account, directory)
        api_client = Cluster(self.kubeconfig, cluster.kubectl_binary).api_client()
        self.leases = client.CoordinationV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def lease(self, holder: str, location: str | None = None, role: str = "runner") -> Any:
        """A runner Lease body as RunnerLease writes it, for ``location`` (default: its own)."""
        labels = {LOCATION_LABEL: location or self.location, ROLE_LABEL: role}
        spec = {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        return lease_body(lease_name("tcpmonitor-runner", holder), self.namespace, labels, spec)

    def create_lease(self, body: dict[str, Any]) -> Any:
        return self.leases.create_namespaced_lease(self.namespace, body)

    def renew(self, name: str, **labels: str) -> Any:
        """Read, then replace with a new renewTime (and ``labels``), as RunnerLease.renew does."""
        current: Any = self.leases.read_namespaced_lease(name, self.namespace)
        # Never a zero fraction: the client would drop it, and the API server refuse the
        # MicroTime (see leases._micro_time).
        current.spec.renew_time = datetime.now(UTC).replace(microsecond=1)
        current.metadata.labels = {**(current.metadata.labels or {}), **labels}
        return self.leases.replace_namespaced_lease(name, self.namespace, current)

    def delete_lease(self, name: str) -> Any:
        return self.leases.delete_namespaced_lease(name, self.namespace)

    def apply_status(self, body: dict[str, Any], manager: str | None = None) -> Any:
        """Server-side apply to the status subresource, as LocationReporter does."""
        meta = body["metadata"]
        return self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            body,
            field_manager=manager or f"tcpmonitor-runner-{self.location}",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def merge_status(self, namespace: str, name: str, status_patch: dict[str, Any]) -> Any:
        return self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status_patch},
            _content_type="application/merge-patch+json",
        )


def refusal(write: Callable[[], Any]) -> str:
    """The policy's refusal of ``write``: a 403 with the policy's message, which it returns."""
    with pytest.raises(ApiException) as caught:
        write()
    exc = caught.value
    assert exc.status == 403, exc.body
    message = str(json.loads(str(exc.body))["message"])
    assert "ValidatingAdmissionPolicy" in message, message
    return message


def entry(name: str, state: MonitorState = MonitorState.UP, runner: str = "") -> LocationStatus:
    return LocationStatus(
        name=name,
        state=state,
        runner=runner or f"{name}-0",
        last_probe_time=datetime.now(UTC).replace(microsecond=0),
        consecutive_successes=3,
        total_ms=1.5,
        message="Up: connected",
    )


@pytest.fixture(scope="module")
def controller_lease(control_plane: Cluster, release: Release) -> dict[str, Any]:
    """The controller's Lease, as the controller keeps it (written here as the admin)."""
    spec = {"holderIdentity": "controller-0", "leaseDurationSeconds": 15}
    body = lease_body(CONTROLLER_LEASE, release.namespace, {ROLE_LABEL: "controller"}, spec)
    apply(control_plane, body)
    return body


@pytest.fixture(scope="module")
def runners(
    control_plane: Cluster,
    release: Release,
    controller_lease: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Runner]:
    """A Runner per location, once the API server enforces the policy (its informer has seen
    it: until then the controller's Lease is writable, as RBAC alone allows)."""
    directory = tmp_path_factory.mktemp("tokens")
    found = {n: Runner(control_plane, release, n, directory) for n in (EAST, WEST, EDGE)}
    east = found[EAST]

    def enforced() -> bool:
        try:
            east.renew(CONTROLLER_LEASE)
        except ApiException as exc:
            return exc.status == 403 and "ValidatingAdmissionPolicy" in str(exc.body)
        return False

    eventually(enforced, POLICY_SYNC, interval=0.5, message="the runner policy enforced")
    return found


def test_the_api_server_accepts_the_policy_as_rendered(
    control_plane: Cluster, release: Release, runners: dict[str, Runner]
) -> None:
    """Every expression compiled (the API server refuses a policy that does not); the status's
    type checking needs a controller-manager, which the harness does not run."""
    rendered = release.one("ValidatingAdmissionPolicy")
    name = rendered["metadata"]["name"]
    shown = control_plane.kubectl("get", "validatingadmissionpolicy", name, "-o", "json")
    live = json.loads(shown.stdout)["spec"]
    for part in ("matchConditions", "variables", "validations"):
        assert live[part] == rendered["spec"][part]


def test_a_runner_renews_its_own_lease_and_no_other(
    release: Release, runners: dict[str, Runner]
) -> None:
    east, west, edge = runners[EAST], runners[WEST], runners[EDGE]
    mine = east.lease("east-0")["metadata"]["name"]
    east.create_lease(east.lease("east-0"))
    renewed = east.renew(mine)
    assert renewed.metadata.labels[LOCATION_LABEL] == EAST
    west_lease = west.lease("west-0")
    west.create_lease(west_lease)
    theirs = west_lease["metadata"]["name"]
    # A remote location's runners, with their ServiceAccount's token, likewise.
    edge.create_lease(edge.lease("edge-0"))
    edge.renew(edge.lease("edge-0")["metadata"]["name"])

    message = refusal(lambda: east.renew(CONTROLLER_LEASE))
    assert (
        "runner of location east may not UPDATE the controller's Lease tcpmonitor-controller"
        in message
    )
    refusal(lambda: east.delete_lease(CONTROLLER_LEASE))
    message = refusal(lambda: east.renew(theirs))
    assert f"refused UPDATE of Lease {theirs} of location west" in message
    # Relabelling another location's Lease as its own takes nothing over.
    message = refusal(lambda: east.renew(theirs, **{LOCATION_LABEL: EAST}))
    assert f"refused UPDATE of Lease {theirs} of location west -> east" in message
    message = refusal(lambda: east.delete_lease(theirs))
    assert f"refused DELETE of Lease {theirs} of location west" in message
    # Nor can it make Leases for another location (to count as one of its runners).
    message = refusal(lambda: east.create_lease(east.lease("forged-0", location=WEST)))
    assert "refused CREATE of Lease tcpmonitor-runner-forged-0 of location west" in message
    refusal(lambda: east.create_lease(east.lease("forged-1", role="controller")))
    refusal(lambda: edge.renew(mine))
    # Its own Lease it deletes when it stops.
    east.delete_lease(mine)


def test_a_runner_writes_only_its_own_entry_of_status_locations(
    control_plane: Cluster, namespace: str, runners: dict[str, Runner]
) -> None:
    east, west = runners[EAST], runners[WEST]
    apply(control_plane, tcpmonitor(namespace, "web", port=9, locations=[EAST, WEST]))
    # The controller's top-level status (here as the admin, which the policy does not concern).
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Probing",
            "message": "probed",
            "lastTransitionTime": now,
        }
    ]
    controller = client.CustomObjectsApi(control_plane.api_client())
    controller.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "web",
        {"status": {"state": "Up", "message": "Up in 2 of 2", "conditions": conditions}},
        _content_type="application/merge-patch+json",
    )
    ref = MonitorRef(namespace, "web")
    # The exact body a runner sends (LocationReporter), for its own location: allowed, and
    # again (a heartbeat, a new state) over its previous entry.
    west.apply_status(location_apply_body(ref, entry(WEST)))
    east.apply_status(location_apply_body(ref, entry(EAST)))
    east.apply_status(location_apply_body(ref, entry(EAST, MonitorState.DOWN)))
    before = status(control_plane, namespace, "web")
    assert location(before, EAST)["state"] == "Down"
    assert location(before, WEST)["state"] == "Up"
    assert before["state"] == "Up"

    # Another location's entry, under that location's field manager or its own.
    forged = location_apply_body(ref, entry(WEST, MonitorState.DOWN, runner="east-0"))
    for manager in ("tcpmonitor-runner-west", "tcpmonitor-runner-east"):

        def forge(manager: str = manager) -> Any:
            return east.apply_status(forged, manager)

        message = refusal(forge)
        assert (
            f"runner of location east may only write its own entry of status.locations of "
            f"{namespace}/web: refused change of the entry of west" in message
        )
    # A merge patch replaces the whole list: dropping the other entries is a change of them.
    own = entry(EAST).model_dump(mode="json", by_alias=True, exclude_none=True)
    message = refusal(lambda: east.merge_status(namespace, "web", {"locations": [own]}))
    assert "refused change of the entry of west" in message
    # The controller's fields.
    message = refusal(lambda: east.merge_status(namespace, "web", {"state": "Down"}))
    assert "refused change of status.state" in message
    message = refusal(lambda: east.merge_status(namespace, "web", {"conditions": []}))
    assert "refused change of status.conditions" in message
    message = refusal(lambda: east.merge_status(namespace, "web", {"message": None}))
    assert "refused change of status.message" in message
    # Its own entry and the controller's state at once: the whole write is refused.
    both = location_apply_body(ref, entry(EAST))
    both["status"]["state"] = "Down"
    message = refusal(lambda: east.apply_status(both))
    assert "refused change of status.state" in message
    # The first write to a monitor without status: the API server fills in the CRD's status
    # defaults, which is no change of the controller's fields; anything more is.
    apply(control_plane, tcpmonitor(namespace, "fresh", port=9, locations=[EAST]))
    fresh = MonitorRef(namespace, "fresh")
    forged = location_apply_body(fresh, entry(EAST))
    forged["status"]["skippedProbes"] = 7
    message = refusal(lambda: east.apply_status(forged))
    assert "refused change of status.skippedProbes" in message
    east.apply_status(location_apply_body(fresh, entry(EAST)))
    assert status(control_plane, namespace, "fresh")["skippedProbes"] == 0
    # Nothing of the refused writes landed.
    after = status(control_plane, namespace, "web")
    assert {k: v for k, v in after.items() if k != "locations"} == {
        k: v for k, v in before.items() if k != "locations"
    }
    assert after["locations"] == before["locations"]


def full_entry(name: str, state: MonitorState = MonitorState.UP) -> LocationStatus:
    """An entry as large as the CRD lets it be: the most the policy's comparisons walk."""
    now = datetime.now(UTC).replace(microsecond=0)
    result = ProbeResult(
        state=Verdict.UP,
        location=name,
        started_at=now,
        remote_address="192.0.2.1:443",
        request=RequestSummary(bytes=4096, excerpt="q" * MAX_EXCERPT),
        response=ResponseSummary(bytes=4096, excerpt="r" * MAX_EXCERPT),
    )
    return entry(name, state).model_copy(
        update={
            "message": "m" * MAX_MESSAGE,
            "recent_transitions": [
                StateChange(state=MonitorState.UP if i % 2 else MonitorState.DOWN, time=now)
                for i in range(MAX_RECENT_TRANSITIONS)
            ],
            "last_result": result,
        }
    )


def test_sixteen_full_locations_stay_within_the_cel_cost_budget(
    control_plane: Cluster, namespace: str, runners: dict[str, Runner]
) -> None:
    """The largest status (sixteen locations, each entry at its limits): the runner's write is
    allowed and a forged one refused with the policy's message, not a cost-limit error."""
    east = runners[EAST]
    others = [f"l{i:02d}" for i in range(15)]
    apply(control_plane, tcpmonitor(namespace, "big", port=9, locations=[EAST, *others]))
    admin = client.CustomObjectsApi(control_plane.api_client())
    ref = MonitorRef(namespace, "big")
    for name in others:
        admin.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "big",
            location_apply_body(ref, full_entry(name)),
            field_manager=f"tcpmonitor-runner-{name}",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
    east.apply_status(location_apply_body(ref, full_entry(EAST)))
    east.apply_status(location_apply_body(ref, full_entry(EAST, MonitorState.DOWN)))
    assert len(status(control_plane, namespace, "big")["locations"]) == 16
    forged = location_apply_body(ref, full_entry(others[-1], MonitorState.DOWN))
    message = refusal(lambda: east.apply_status(forged))
    assert f"refused change of the entry of {others[-1]}" in message


def test_the_runner_process_works_under_the_policy(
    control_plane: Cluster,
    namespace: str,
    release: Release,
    runners: dict[str, Runner],
    tmp_path: Path,
) -> None:
    """The real runner, with the chart's arguments and its location's token: its Lease, its
    entry, its release of the Lease on the way out, and not one refusal in its log."""
    listener = Listener(greeting=b"hi\n").start()
    east = runners[EAST]
    process = runner(control_plane, release, tmp_path, east.kubeconfig, location=EAST)
    try:
        apply(control_plane, tcpmonitor(namespace, "web", port=listener.port, locations=[EAST]))
        st = eventually(
            lambda: (
                (s := status(control_plane, namespace, "web"))
                and location(s, EAST).get("state") == "Up"
                and s
            ),
            30,
            message="east's entry Up",
        )
        assert location(st, EAST)["runner"] == f"runner-{EAST}-0"
        lease: Any = east.leases.read_namespaced_lease(
            lease_name("tcpmonitor-runner", f"runner-{EAST}-0"), release.namespace
        )
        assert lease.metadata.labels[LOCATION_LABEL] == EAST
    finally:
        process.stop()
        listener.stop()
    assert not forbidden(process.records()), process.log()
    with pytest.raises(ApiException) as gone:
        east.leases.read_namespaced_lease(
            lease_name("tcpmonitor-runner", f"runner-{EAST}-0"), release.namespace
        )
    assert gone.value.status == 404
