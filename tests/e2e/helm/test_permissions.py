"""Each rule the chart grants is necessary: without any one verb, the process fails visibly.

A verb the chart grants without a failure case here fails
test_the_chart_grants_exactly_the_verbs_tested_below.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane import Cluster

from ..operator_process import OperatorProcess, apply, condition, eventually, reasons, status
from .chart_release import (
    CONTROLLER_LEASE,
    Manifest,
    Release,
    Targets,
    controller,
    forbidden,
    identity,
    lease,
    location,
    runner,
    runnerless,
)

# Lease duration for the processes of the rule-removal tests (the chart's is 15s): an expired
# Lease is part of what some of them show.
SHORT_LEASE = "4s"

Rule = tuple[str, str, str]  # (API group, resource, verb)


def holds(fn: Callable[[], bool], seconds: float, message: str) -> None:
    """``fn`` stays true for ``seconds`` (what a working process would have changed by then)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert fn(), message
        time.sleep(0.2)


SUBJECT = "subject-0"  # the identity of the process under test


@dataclass
class Scene:
    """One rule-removal test: the process without the rule, and its working partner."""

    cluster: Cluster
    ns: str  # the monitors' namespace, also where the Leases are kept
    process: OperatorProcess
    partners: list[OperatorProcess] = field(default_factory=list)

    def status(self, name: str) -> dict[str, Any]:
        return status(self.cluster, self.ns, name)


@dataclass(frozen=True)
class Failure:
    """How a process fails without a rule: what its log says, and what the objects show.

    ``log``: fragments of one warning or error record ({ns} is the test namespace), empty when
    the process logs nothing and the objects alone show it. ``check``: polled until true.
    ``late``: for watch failures, a monitor created afterwards; ``late_seen`` is polled until the
    rest of the system has taken it in, then ``late_missed`` must hold for a few seconds.
    ``stop_when``: the failure shows when the process stops (giving its Lease up); it is stopped
    once this says it is working.
    """

    log: tuple[str, ...]
    check: Callable[[Scene], bool]
    late_seen: Callable[[Scene], bool] | None = None
    late_missed: Callable[[Scene], bool] | None = None
    stop_when: Callable[[Scene], bool] | None = None


def no_status(scene: Scene) -> bool:
    return not scene.status("web") and not scene.status("kubernetes-api")


def monitor_up(name: str) -> Callable[[Scene], bool]:
    return lambda scene: scene.status(name).get("state") == "Up"


# A Secret the operator may not read reads as one that is not there (the 403 is in its log);
# a ConfigMap's message says what the API server said.
SECRET_UNAVAILABLE = 'Secret "payload" key "request": not found or not readable'
CONFIGMAP_FORBIDDEN = "ConfigMap {ns}/kube-root-ca.crt: 403 Forbidden"


def unreadable(name: str, reference: str) -> Callable[[Scene], bool]:
    """Ready=False with ``reference`` in the message, for this monitor only."""

    def check(scene: Scene) -> bool:
        ready = condition(scene.status(name), "Ready")
        other = "kubernetes-api" if name == "web" else "web"
        return (
            ready.get("status") == "False"
            and ready.get("reason") == "ReferenceUnreadable"
            and reference.format(ns=scene.ns) in ready.get("message", "")
            and scene.status(other).get("state") == "Up"
        )

    return check


def up_without_events(scene: Scene) -> bool:
    return (
        scene.status("web").get("state") == "Up"
        and not reasons(scene.cluster, scene.ns, "web")
        and not reasons(scene.cluster, scene.ns, "kubernetes-api")
    )


def located_not_aggregated(scene: Scene) -> bool:
    """The runner reports location default, but no controller turns that into a state."""
    st = scene.status("web")
    return location(st).get("state") == "Up" and "state" not in st


def aggregated_not_located(scene: Scene) -> bool:
    """The controller counts a live runner in location default that reports nothing."""
    st = scene.status("web")
    return (
        st.get("message") == "no probe result yet"  # one location: as the all-in-one says
        and not location(st)
        and condition(st, "LocationsAvailable").get("status") == "True"
    )


def no_live_runner(scene: Scene) -> bool:
    return runnerless(scene.cluster, scene.ns, "web")


def lease_kept(name: str) -> Callable[[Scene], bool]:
    def check(scene: Scene) -> bool:
        held = lease(scene.cluster, scene.ns, name)
        return bool(held) and held["spec"]["holderIdentity"] == SUBJECT

    return check


def runner_unreadable(name: str, reference: str) -> Callable[[Scene], bool]:
    """The runner's entry for this monitor says why it cannot probe; the other is Up."""

    def check(scene: Scene) -> bool:
        entry = location(scene.status(name))
        other = "kubernetes-api" if name == "web" else "web"
        return (
            entry.get("state") == "Unknown"
            and reference.format(ns=scene.ns) in entry.get("message", "")
            and location(scene.status(other)).get("state") == "Up"
        )

    return check


def controller_unreadable(name: str, reference: str) -> Callable[[Scene], bool]:
    """The controller refuses the spec (Ready=False) although the runner probes it fine."""

    def check(scene: Scene) -> bool:
        st = scene.status(name)
        return unreadable(name, reference)(scene) and location(st).get("state") == "Up"

    return check


def fenced_not_ready(scene: Scene) -> bool:
    process = scene.process
    if process.process.poll() is not None or process.http_status("/readyz") != 503:
        return False
    return "cannot renew its Lease" in process._get("/readyz")[1]


TCPMONITORS_LIST = ("tcpmonitor.dev", "tcpmonitors", "list")
TCPMONITORS_WATCH = ("tcpmonitor.dev", "tcpmonitors", "watch")
STATUS_PATCH = ("tcpmonitor.dev", "tcpmonitors/status", "patch")
EVENTS_CREATE = ("events.k8s.io", "events", "create")
SECRETS_GET = ("", "secrets", "get")
CONFIGMAPS_GET = ("", "configmaps", "get")


def leases(verb: str) -> Rule:
    return ("coordination.k8s.io", "leases", verb)


POLICIES_LIST = ("tcpmonitor.dev", "tcpmonitorpolicies", "list")
POLICIES_WATCH = ("tcpmonitor.dev", "tcpmonitorpolicies", "watch")
NAMESPACES_LIST = ("", "namespaces", "list")
NAMESPACES_WATCH = ("", "namespaces", "watch")
# The target policy, read before the first TcpMonitor: without it nothing is probed.
CANNOT_LIST_POLICIES = (
    "reading TcpMonitorPolicies failed (forbidden)",
    'cannot list resource "tcpmonitorpolicies"',
)
CANNOT_LIST_NAMESPACES = (
    "reading namespaces failed (forbidden)",
    'cannot list resource "namespaces"',
)
# Watched afterwards: without the watch a change is missed (the policy read at start holds).
CANNOT_WATCH_POLICIES = ("APIForbiddenError", 'cannot watch resource "tcpmonitorpolicies"')
CANNOT_WATCH_NAMESPACES = ("APIForbiddenError", 'cannot watch resource "namespaces"')
CANNOT_LIST = ("APIForbiddenError", 'cannot list resource "tcpmonitors"')
CANNOT_WATCH = ("APIForbiddenError", 'cannot watch resource "tcpmonitors"')

# What a user sees in a process's log (JSON lines) when one verb is missing, and on the objects.
FAILURES: dict[str, dict[Rule, Failure]] = {
    # `tcpmonitor operator` (mode all-in-one): probes and reports everything itself.
    "all-in-one": {
        TCPMONITORS_LIST: Failure(CANNOT_LIST, no_status),
        TCPMONITORS_WATCH: Failure(
            CANNOT_WATCH,
            # The initial list works, so those monitors are probed; later ones are never seen.
            monitor_up("web"),
            late_missed=lambda scene: not scene.status("late"),
        ),
        STATUS_PATCH: Failure(("{ns}/web failed: 403 Forbidden",), no_status),
        EVENTS_CREATE: Failure(
            ("posting TargetUp event for {ns}/", 'cannot create resource "events"'),
            up_without_events,
        ),
        SECRETS_GET: Failure(
            ("{ns}/web failed: Secret {ns}/payload: 403 Forbidden",),
            unreadable("web", SECRET_UNAVAILABLE),
        ),
        CONFIGMAPS_GET: Failure(
            ("{ns}/kubernetes-api failed: ConfigMap {ns}/kube-root-ca.crt: 403 Forbidden",),
            unreadable("kubernetes-api", CONFIGMAP_FORBIDDEN),
        ),
        POLICIES_LIST: Failure(CANNOT_LIST_POLICIES, no_status),
        POLICIES_WATCH: Failure(CANNOT_WATCH_POLICIES, monitor_up("web")),
        NAMESPACES_LIST: Failure(CANNOT_LIST_NAMESPACES, no_status),
        NAMESPACES_WATCH: Failure(CANNOT_WATCH_NAMESPACES, monitor_up("web")),
    },
    # `tcpmonitor operator --mode controller --leader-election`, with a working runner.
    "controller": {
        TCPMONITORS_LIST: Failure(CANNOT_LIST, located_not_aggregated),
        TCPMONITORS_WATCH: Failure(
            CANNOT_WATCH,
            lambda scene: location(scene.status("web")).get("state") == "Up",
            late_seen=lambda scene: location(scene.status("late")).get("state") == "Up",
            late_missed=lambda scene: "state" not in scene.status("late"),
        ),
        STATUS_PATCH: Failure(("{ns}/web failed: 403 Forbidden",), located_not_aggregated),
        EVENTS_CREATE: Failure(
            ("posting TargetUp event for {ns}/", 'cannot create resource "events"'),
            up_without_events,
        ),
        # The controller validates references; it says so in status and an InvalidSpec Event,
        # and what the API server said about a Secret in its log only.
        SECRETS_GET: Failure(
            ("{ns}/web failed: Secret {ns}/payload: 403 Forbidden",),
            controller_unreadable("web", SECRET_UNAVAILABLE),
        ),
        CONFIGMAPS_GET: Failure((), controller_unreadable("kubernetes-api", CONFIGMAP_FORBIDDEN)),
        # Which locations have a live runner: without the list, every location is assumed to
        # have one, and a location nobody serves is reported as available.
        leases("list"): Failure(
            ("listing runner leases failed: 403",),
            lambda scene: (
                scene.status("web").get("state") == "Up"
                and condition(scene.status("nowhere"), "LocationsAvailable").get("status") == "True"
            ),
        ),
        # Leader election: it never becomes the active controller.
        leases("create"): Failure(
            ("leader election: ", 'cannot create resource "leases"'),
            located_not_aggregated,
        ),
        leases("get"): Failure(
            ("leader election: ", 'cannot get resource "leases"'),
            located_not_aggregated,
        ),
        # It creates the Lease and acts, cannot renew it: it holds its writes and says so in
        # /readyz, without exiting (an API server outage looks the same from inside).
        leases("update"): Failure(
            ("leader election renewal: ", 'cannot update resource "leases"'), fenced_not_ready
        ),
        # It cannot give the Lease up: a standby waits for it to expire.
        leases("delete"): Failure(
            (
                f"releasing lease {CONTROLLER_LEASE} failed",
                'cannot delete resource "leases"',
            ),
            lease_kept(CONTROLLER_LEASE),
            stop_when=monitor_up("web"),
        ),
    },
    # `tcpmonitor runner --location default`, with a working controller.
    "runner": {
        TCPMONITORS_LIST: Failure(CANNOT_LIST, aggregated_not_located),
        TCPMONITORS_WATCH: Failure(
            CANNOT_WATCH,
            lambda scene: location(scene.status("web")).get("state") == "Up",
            late_seen=lambda scene: "state" in scene.status("late"),
            late_missed=lambda scene: not location(scene.status("late")),
        ),
        STATUS_PATCH: Failure(("{ns}/web failed: 403 Forbidden",), aggregated_not_located),
        SECRETS_GET: Failure(
            ("{ns}/web failed: Secret {ns}/payload: 403 Forbidden",),
            runner_unreadable("web", SECRET_UNAVAILABLE),
        ),
        CONFIGMAPS_GET: Failure(
            ("{ns}/kubernetes-api failed: ConfigMap {ns}/kube-root-ca.crt: 403 Forbidden",),
            runner_unreadable("kubernetes-api", CONFIGMAP_FORBIDDEN),
        ),
        # Its own Lease: without it the runner is not a member of its location.
        leases("get"): Failure(
            (
                f"lease renewal for tcpmonitor-runner-{SUBJECT} failed",
                'cannot get resource "leases"',
            ),
            no_live_runner,
        ),
        leases("create"): Failure(
            (
                f"lease renewal for tcpmonitor-runner-{SUBJECT} failed",
                'cannot create resource "leases"',
            ),
            no_live_runner,
        ),
        # It creates its Lease and probes, cannot renew, and the Lease expires under it.
        leases("update"): Failure(
            (
                f"lease renewal for tcpmonitor-runner-{SUBJECT} failed",
                'cannot update resource "leases"',
            ),
            lambda scene: no_live_runner(scene) and bool(location(scene.status("web"))),
        ),
        leases("delete"): Failure(
            (
                f"releasing lease tcpmonitor-runner-{SUBJECT} failed",
                'cannot delete resource "leases"',
            ),
            lease_kept(f"tcpmonitor-runner-{SUBJECT}"),
            stop_when=lambda scene: location(scene.status("web")).get("state") == "Up",
        ),
        # Until it knows the policy it neither probes nor takes its Lease: the location has
        # no live runner, which is the truth.
        POLICIES_LIST: Failure(CANNOT_LIST_POLICIES, no_live_runner),
        POLICIES_WATCH: Failure(
            CANNOT_WATCH_POLICIES, lambda scene: location(scene.status("web")).get("state") == "Up"
        ),
        NAMESPACES_LIST: Failure(CANNOT_LIST_NAMESPACES, no_live_runner),
        NAMESPACES_WATCH: Failure(
            CANNOT_WATCH_NAMESPACES,
            lambda scene: location(scene.status("web")).get("state") == "Up",
        ),
        # The location's members: without them it takes no monitor, although its Lease is live.
        leases("list"): Failure(
            (
                f"lease renewal for tcpmonitor-runner-{SUBJECT} failed",
                'cannot list resource "leases"',
            ),
            aggregated_not_located,
        ),
    },
}


def live_rules(
    cluster: Cluster, kind: str, name: str, namespace: str | None = None
) -> list[Manifest]:
    args = [kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    live = json.loads(cluster.kubectl("get", *args, check=True).stdout)
    rules: list[Manifest] = live["rules"]
    return rules


@dataclass(frozen=True)
class Grants:
    """A process's rules as installed: TcpMonitor rules (cluster-wide) and Lease rules."""

    cluster_rules: list[Manifest]
    lease_rules: list[Manifest]

    @property
    def all(self) -> set[Rule]:
        return flatten(self.cluster_rules) | flatten(self.lease_rules)


def bound_roles(release: Release, kind: str, account: str) -> list[str]:
    """The roles the release's bindings of ``kind`` give the ServiceAccount ``account``."""
    return [
        binding["roleRef"]["name"]
        for binding in release.all(kind).values()
        if any(s["name"] == account for s in binding["subjects"])
    ]


def chart_grants(cluster: Cluster, release: Release, component: str) -> Grants:
    # The runners of every location share their roles; each location has its own account.
    # Whoever probes is also bound to the target policy's ClusterRole.
    account = release.service_account(component, "default" if component == "runner" else None)
    cluster_roles = bound_roles(release, "ClusterRoleBinding", account)
    assert len(cluster_roles) == (1 if component == "controller" else 2), cluster_roles
    lease_roles = bound_roles(release, "RoleBinding", account)  # none in all-in-one
    assert len(lease_roles) <= 1, lease_roles
    lease_rules = [
        r for role in lease_roles for r in live_rules(cluster, "role", role, release.namespace)
    ]
    cluster_rules = [r for role in cluster_roles for r in live_rules(cluster, "clusterrole", role)]
    return Grants(cluster_rules, lease_rules)


def flatten(rules: list[Manifest]) -> set[Rule]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_chart_grants_exactly_the_verbs_tested_below(
    control_plane: Cluster, release: Release, all_in_one: Release
) -> None:
    """A verb added to the chart without a failure case below fails here: every permission
    must be shown to be needed."""
    assert chart_grants(control_plane, all_in_one, "operator").all == set(FAILURES["all-in-one"])
    for component in ("controller", "runner"):
        assert chart_grants(control_plane, release, component).all == set(FAILURES[component])


def without(rules: list[Manifest], removed: Rule) -> list[Manifest]:
    group, resource, verb = removed
    reduced = []
    for original in rules:
        rule = json.loads(json.dumps(original))
        if group in rule["apiGroups"] and resource in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
        if rule["verbs"]:
            reduced.append(rule)
    assert flatten(reduced) == flatten(rules) - {removed}
    return reduced


def grant(
    cluster: Cluster,
    name: str,
    account: tuple[str, str],
    cluster_rules: list[Manifest],
    lease_rules: list[Manifest],
    lease_namespace: str,
) -> None:
    """A ClusterRole with ``cluster_rules`` and a Role in ``lease_namespace``, for ``account``."""
    subject = [{"kind": "ServiceAccount", "name": account[1], "namespace": account[0]}]
    documents: list[Manifest] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": cluster_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": subject,
        },
    ]
    if lease_rules:
        documents += [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": lease_namespace},
                "rules": lease_rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": lease_namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": subject,
            },
        ]
    apply(cluster, *documents)


CASES = [(role, rule) for role, failures in FAILURES.items() for rule in failures]


@pytest.mark.parametrize(
    ("role", "removed"), CASES, ids=[f"{c[0]}-{c[1][1].replace('/', '-')}-{c[1][2]}" for c in CASES]
)
def test_without_a_rule_the_process_fails_visibly(
    control_plane: Cluster,
    release: Release,
    all_in_one: Release,
    targets: Targets,
    tmp_path: Path,
    role: str,
    removed: Rule,
) -> None:
    """The process gets the chart's rules less one verb; its partner (the runner for the
    controller, and the other way round) the chart's own. Both keep their Leases in the test
    namespace (a copy of the chart's Lease Role there) with a short duration, so that tests do
    not see each other's Leases."""
    cluster, ns = control_plane, targets.namespace
    failure = FAILURES[role][removed]
    home = all_in_one if role == "all-in-one" else release
    component = "operator" if role == "all-in-one" else role
    tag = f"without-{role}-{removed[1].replace('/', '-')}-{removed[2]}"
    name = f"{home.namespace}-{tag}"
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": tag, "namespace": home.namespace},
    }
    apply(cluster, account)
    grants = chart_grants(cluster, home, component)
    reduced = Grants(
        without(grants.cluster_rules, removed)
        if removed in flatten(grants.cluster_rules)
        else grants.cluster_rules,
        without(grants.lease_rules, removed)
        if removed in flatten(grants.lease_rules)
        else grants.lease_rules,
    )
    grant(cluster, name, (home.namespace, tag), reduced.cluster_rules, reduced.lease_rules, ns)
    overrides = [f"--namespace={ns}"]
    if role != "all-in-one":
        overrides += [f"--lease-namespace={ns}", f"--lease-duration={SHORT_LEASE}"]
    scene: Scene | None = None
    partners: list[OperatorProcess] = []
    try:
        extra = [targets.nowhere()] if role == "controller" else []
        targets.apply(cluster, *extra)
        if role != "all-in-one":
            other = "runner" if role == "controller" else "controller"
            other_account = release.service_account(other, "default" if other == "runner" else None)
            # The partner's own chart rules, with its Lease rules also in the test namespace.
            other_grants = chart_grants(cluster, release, other)
            grant(
                cluster,
                f"{name}-partner",
                (release.namespace, other_account),
                [],
                other_grants.lease_rules,
                ns,
            )
            kubeconfig = identity(cluster, release.namespace, other_account, tmp_path)
            start = runner if other == "runner" else controller
            partners.append(start(cluster, release, tmp_path, kubeconfig, *overrides))
        kubeconfig = identity(cluster, home.namespace, tag, tmp_path)
        command = "runner" if role == "runner" else "operator"
        # Some failures keep /readyz from ever answering: wait for nothing, read the log.
        process = OperatorProcess(
            cluster,
            tmp_path,
            *home.args(component, "default" if role == "runner" else None),
            f"--identity={SUBJECT}",
            *overrides,
            kubeconfig=kubeconfig,
            command=command,
            wait_ready=False,
        )
        scene = current = Scene(cluster, ns, process, partners)
        fragments = tuple(f.format(ns=ns) for f in failure.log)
        stop_when, late_seen, late_missed = (
            failure.stop_when,
            failure.late_seen,
            failure.late_missed,
        )
        if stop_when is not None:
            eventually(lambda: stop_when(current), 20, message="working before the stop")
            process.stop()
        if fragments:
            record = eventually(lambda: process.logged(*fragments), 30, message=f"log {fragments}")
            assert record["level"] in ("warning", "error"), record
            print(f"\nwithout {removed}: {record['level']} {record['logger']}: {record['message']}")
        eventually(lambda: failure.check(current), 20, message="visible failure")
        if late_missed is not None:
            apply(cluster, targets.late())
            if late_seen is not None:
                eventually(lambda: late_seen(current), 10, message="the others see it")
            holds(lambda: late_missed(current), 3, "a monitor created later is seen")
    finally:
        if scene is not None:
            scene.process.stop()
        for partner in partners:
            partner.stop()
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, "--wait=false")
    for partner in partners:
        assert not forbidden(partner.records()), partner.log()
