"""The Helm chart on the real control plane, and each process with exactly the chart's RBAC.

The harness has no kubelet, so the chart's pods never run. Instead the processes run locally
with the identity their pods would have: a token for the chart's ServiceAccount from the
TokenRequest API, and the command-line arguments of the chart's Deployment. The default install
(a controller, and runners in location ``default``) must reconcile monitors end to end with
those identities: the runner writes ``status.locations[default]``, the controller the top-level
state, conditions and Events (the RBAC is sufficient). With any one verb of a process's rules
removed, that process must fail in a way a user sees, in its log and on the objects (the RBAC
is not wider than needed). The same holds for the all-in-one mode, and for a remote location's
identity.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane import Cluster
from tests.unit.test_argocd_health import argocd_health

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    condition,
    eventually,
    free_port,
    get,
    reasons,
    status,
    tcpmonitor,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "tcpmonitor-operator"
RELEASE = "tcpmonitor-operator"
REMOTE = "remote"  # the remote location of the default release
CONTROLLER_LEASE = "tcpmonitor-controller"
# Lease duration for the processes of the rule-removal tests (the chart's is 15s): an expired
# Lease is part of what some of them show.
SHORT_LEASE = "4s"

Manifest = dict[str, Any]
Rule = tuple[str, str, str]  # (API group, resource, verb)


def run_helm(helm: Path, cluster: Cluster, home: Path, *args: str, check: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env |= {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    result = subprocess.run(
        [str(helm), *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Release:
    """An installed release: its namespace, its manifest, and what each pod would get."""

    name: str
    namespace: str
    install_output: str
    manifest: tuple[Manifest, ...]

    def one(self, kind: str) -> Manifest:
        (found,) = [m for m in self.manifest if m["kind"] == kind]
        return found

    def all(self, kind: str) -> dict[str, Manifest]:
        return {m["metadata"]["name"]: m for m in self.manifest if m["kind"] == kind}

    def workload(self, component: str, location: str | None = None) -> Manifest:
        """The Deployment of the operator, the controller, or the runners of a location."""
        found = []
        for deployment in self.all("Deployment").values():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if labels["app.kubernetes.io/component"] == component and (
                location is None or labels["tcpmonitor.dev/location"] == location
            ):
                found.append(deployment)
        (workload,) = found
        return workload

    def service_account(self, component: str, location: str | None = None) -> str:
        return str(
            self.workload(component, location)["spec"]["template"]["spec"]["serviceAccountName"]
        )

    def args(self, component: str, location: str | None = None) -> list[str]:
        """The Deployment's arguments, less the sub-command and the listen address and port
        (OperatorProcess picks a free loopback port)."""
        (container,) = self.workload(component, location)["spec"]["template"]["spec"]["containers"]
        args: list[str] = container["args"]
        assert args[0] == ("runner" if component == "runner" else "operator")
        return [a for a in args[1:] if not a.startswith(("--metrics-address", "--metrics-port"))]


def install(
    cluster: Cluster, helm: Path, home: Path, namespace: str, name: str, *values: str
) -> Release:
    output = run_helm(
        helm, cluster, home, "install", name, str(CHART), "--namespace", namespace, *values
    )
    manifest = run_helm(helm, cluster, home, "get", "manifest", name, "--namespace", namespace)
    documents = tuple(d for d in yaml.safe_load_all(manifest) if d)
    return Release(name, namespace, output, documents)


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="module")
def release(control_plane: Cluster, helm: Path, helm_home: Path) -> Iterator[Release]:
    """The chart with default values (plus the dashboard and a remote location), in a namespace
    of its own."""
    namespace = f"tcpm-system-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace, check=True)
    installed = install(
        control_plane,
        helm,
        helm_home,
        namespace,
        RELEASE,
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        f"remoteLocations[0].name={REMOTE}",
    )
    yield installed
    run_helm(helm, control_plane, helm_home, "uninstall", RELEASE, "--namespace", namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def all_in_one(control_plane: Cluster, helm: Path, helm_home: Path) -> Iterator[Release]:
    """The chart with mode=all-in-one, in a namespace of its own."""
    namespace = f"tcpm-aio-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace, check=True)
    installed = install(
        control_plane, helm, helm_home, namespace, "aio", "--set", "mode=all-in-one"
    )
    yield installed
    run_helm(helm, control_plane, helm_home, "uninstall", "aio", "--namespace", namespace)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def identity(cluster: Cluster, namespace: str, service_account: str, directory: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, as the pod's token would."""
    token = cluster.create_token(namespace, service_account)
    path = directory / f"{service_account}.kubeconfig"
    cluster.as_token(token, path)
    return path


def can_i(cluster: Cluster, kubeconfig: Path, *args: str) -> bool:
    as_sa = Cluster(kubeconfig, cluster.kubectl_binary)
    return as_sa.kubectl("auth", "can-i", *args).stdout.strip() == "yes"


def controller(
    cluster: Cluster, release: Release, log_dir: Path, kubeconfig: Path, *extra: str
) -> OperatorProcess:
    """The chart's controller, as its pod named ``controller-0`` would run it."""
    return OperatorProcess(
        cluster,
        log_dir,
        *release.args("controller"),
        "--identity=controller-0",
        *extra,
        kubeconfig=kubeconfig,
    )


def runner(
    cluster: Cluster,
    release: Release,
    log_dir: Path,
    kubeconfig: Path,
    *extra: str,
    location: str = "default",
) -> OperatorProcess:
    """The chart's runner of ``location``, as its pod named ``runner-<location>-0`` would."""
    return OperatorProcess(
        cluster,
        log_dir,
        *release.args("runner", location),
        f"--identity=runner-{location}-0",
        *extra,
        kubeconfig=kubeconfig,
        command="runner",
    )


# -- the targets and monitors: every kind of API access the processes have --------------------


@dataclass(frozen=True)
class Targets:
    """Monitors that use every permission: a payload from a Secret, a CA from a ConfigMap.

    ``web`` sends a Secret's bytes to a loopback listener; ``api`` verifies the API server's
    certificate against a CA bundle in a ConfigMap (the harness has no kube-root-ca.crt
    publisher, so the test publishes the cluster CA the same way).
    """

    namespace: str
    listener: Listener

    def apply(self, cluster: Cluster, *extra: Manifest) -> None:
        server = cluster.server()
        ca_pem = cluster_ca(cluster)
        port = int(server.rsplit(":", 1)[1])
        apply(
            cluster,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "payload", "namespace": self.namespace},
                "data": {"request": base64.b64encode(b"HELLO?\r\n").decode()},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": self.namespace},
                "data": {"ca.crt": ca_pem},
            },
            tcpmonitor(
                self.namespace,
                "web",
                port=self.listener.port,
                sendFrom={"secretKeyRef": {"name": "payload", "key": "request"}},
                assertions=[{"source": "ResponseData", "comparison": "Contains", "target": "hi"}],
            ),
            tcpmonitor(
                self.namespace,
                "kubernetes-api",
                port=port,
                tls={
                    "enabled": True,
                    "serverName": "localhost",
                    # The harness's serving certificate lives for days, not weeks.
                    "expiryWarning": "1d",
                    "caConfigMapRef": {"name": "kube-root-ca.crt", "key": "ca.crt"},
                },
            ),
            *extra,
        )

    def nowhere(self) -> Manifest:
        """A monitor in a location no runner serves."""
        return tcpmonitor(self.namespace, "nowhere", port=self.listener.port, locations=["nowhere"])

    def late(self) -> Manifest:
        """A monitor created after the processes have listed the monitors."""
        return tcpmonitor(self.namespace, "late", port=self.listener.port)


def cluster_ca(cluster: Cluster) -> str:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    (entry,) = config["clusters"]
    data = entry["cluster"].get("certificate-authority-data")
    if data:
        return base64.b64decode(data).decode()
    ca_path = Path(entry["cluster"]["certificate-authority"])
    return (cluster.kubeconfig.parent / ca_path).read_text()


@pytest.fixture
def targets(namespace: str) -> Iterator[Targets]:
    listener = Listener(greeting=b"hi there\n").start()
    yield Targets(namespace, listener)
    listener.stop()


def up(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    st = status(cluster, namespace, name)
    return st if st.get("state") == "Up" else None


def settled(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The status once Up in its one location, with a live runner there."""
    st = status(cluster, namespace, name)
    return st if st.get("message") == "Up in 1 of 1 locations" else None


def runnerless(cluster: Cluster, namespace: str, name: str) -> bool:
    """The controller reports a location of the monitor without a live runner."""
    available = condition(status(cluster, namespace, name), "LocationsAvailable")
    return available.get("status") == "False" and available.get("reason") == "NoLiveRunner"


def location(st: dict[str, Any], name: str = "default") -> dict[str, Any]:
    """A location's entry of status.locations, or {}."""
    return next((e for e in st.get("locations") or [] if e["name"] == name), {})


def holds(fn: Callable[[], bool], seconds: float, message: str) -> None:
    """``fn`` stays true for ``seconds`` (what a working process would have changed by then)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert fn(), message
        time.sleep(0.2)


def lease(cluster: Cluster, namespace: str, name: str) -> Manifest:
    return get(cluster, namespace, name, "lease")


def field_managers(cluster: Cluster, namespace: str, name: str) -> dict[str, Manifest]:
    """Who wrote what in a TcpMonitor's status (server-side apply bookkeeping)."""
    out = cluster.kubectl(
        "get", "tcpmonitor", name, "-n", namespace, "-o", "json", "--show-managed-fields"
    )
    entries = json.loads(out.stdout)["metadata"]["managedFields"]
    return {
        e["manager"]: e.get("fieldsV1", {}) for e in entries if e.get("subresource") == "status"
    }


# -- install ------------------------------------------------------------------------------------


def test_helm_install_creates_the_chart_objects(control_plane: Cluster, release: Release) -> None:
    assert "STATUS: deployed" in release.install_output
    notes = release.install_output.split("NOTES:", 1)[1]
    for name in (f"{RELEASE}-controller", f"{RELEASE}-runner-default"):
        assert f"kubectl -n {release.namespace} rollout status deployment/{name}" in notes
    kinds = sorted(m["kind"] for m in release.manifest)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
        "ServiceAccount",
    ]
    for manifest in release.manifest:
        args = [f"{manifest['kind']}/{manifest['metadata']['name']}", "-o", "json"]
        if "namespace" in manifest["metadata"]:
            args += ["-n", manifest["metadata"]["namespace"]]
        live = json.loads(control_plane.kubectl("get", *args, check=True).stdout)
        assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # The API server kept the pod security settings as rendered (nothing dropped or defaulted).
    for name in release.all("Deployment"):
        live = get(control_plane, release.namespace, name, "deployment")
        pod = live["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The metrics Service selects every pod of the release: one scrape job for all of them.
    service = release.one("Service")
    for deployment in release.all("Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()


# -- the controller and a runner with the chart's identities ------------------------------------


def test_controller_and_runner_with_the_chart_identities_reconcile_end_to_end(
    control_plane: Cluster,
    release: Release,
    targets: Targets,
    tmp_path: Path,
) -> None:
    ns, cluster = targets.namespace, control_plane
    controller_kubeconfig = identity(
        cluster, release.namespace, release.service_account("controller"), tmp_path
    )
    runner_kubeconfig = identity(
        cluster, release.namespace, release.service_account("runner", "default"), tmp_path
    )
    # Exactly the Deployments' arguments: all namespaces, Leases in the release namespace.
    assert not any(a.startswith("--namespace") for a in release.args("controller"))
    assert f"--lease-namespace={release.namespace}" in release.args("controller")
    assert f"--lease-namespace={release.namespace}" in release.args("runner", "default")
    active = controller(cluster, release, tmp_path, controller_kubeconfig)
    prober = runner(cluster, release, tmp_path, runner_kubeconfig)
    try:
        targets.apply(cluster, targets.nowhere())
        # Settled: the controller has seen the runner's Lease (it reads them every third of
        # the Lease duration) and its report.
        web = eventually(lambda: settled(cluster, ns, "web"), 20, message="web Up")
        api = eventually(lambda: settled(cluster, ns, "kubernetes-api"), 20, message="api Up")
        for st in (web, api):
            # The runner's entry, and the controller's verdict over it.
            assert location(st)["state"] == "Up"
            assert location(st)["runner"] == "runner-default-0"
            assert condition(st, "Ready")["status"] == "True"
            assert condition(st, "Reachable")["status"] == "True"
            assert condition(st, "LocationsAvailable")["status"] == "True"
        # Server-side apply: the runner owns only its location's entry; the controller the rest.
        managers = field_managers(cluster, ns, "web")
        runner_fields = managers.pop("tcpmonitor-runner-default")["f:status"]
        assert list(runner_fields) == ["f:locations"]
        assert list(runner_fields["f:locations"]) == ['k:{"name":"default"}']
        assert any("f:state" in fields.get("f:status", {}) for fields in managers.values())
        # A location without a runner is reported, not silently ignored.
        nowhere = eventually(
            lambda: (
                (st := status(cluster, ns, "nowhere"))
                and condition(st, "LocationsAvailable").get("status") == "False"
                and st
            ),
            20,
            message="nowhere: LocationsAvailable=False",
        )
        assert condition(nowhere, "LocationsAvailable")["reason"] == "NoLiveRunner"
        eventually(
            lambda: {"TargetUp"} <= set(reasons(cluster, ns, "web")),
            10,
            message="TargetUp event",
        )
        eventually(
            lambda: "LocationUnavailable" in reasons(cluster, ns, "nowhere"),
            10,
            message="LocationUnavailable event",
        )
        # Events come from the controller (the runner, which may not create any, would log a
        # 403 if it tried: checked below).
        items = json.loads(
            cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json").stdout
        )["items"]
        assert {e["reportingController"] for e in items} == {"tcpmonitor.dev/operator"}
        # Runners export the probe results; the controller the aggregated state.
        assert prober.metric("tcpmonitor_probe_success", namespace=ns, name="web") == 1
        assert active.metric("tcpmonitor_probe_success", namespace=ns, name="web") is None
        assert active.metric("tcpmonitor_state", namespace=ns, name="web", state="Up") == 1
        # Both Leases, in the release namespace.
        held = lease(cluster, release.namespace, CONTROLLER_LEASE)
        assert held["spec"]["holderIdentity"] == "controller-0"
        mine = lease(cluster, release.namespace, "tcpmonitor-runner-runner-default-0")
        assert mine["metadata"]["labels"] == {
            "tcpmonitor.dev/role": "runner",
            "tcpmonitor.dev/location": "default",
        }
        # What users see, pasted into docs/install.md.
        table = cluster.kubectl("get", "tcpm", "-n", ns, check=True).stdout
        print(f"\n$ kubectl get tcpm -n {ns}\n{table}")
        assert table.split()[:7] == ["NAME", "HOST", "PORT", "STATE", "LATENCY", "LAST", "PROBE"]
        # The per-location view the install notes suggest.
        (command,) = [
            line.strip()
            for line in release.install_output.splitlines()
            if "-o custom-columns=" in line
        ]
        words = shlex.split(command)
        assert words[:4] == ["kubectl", "get", "tcpmonitors", "--all-namespaces"]
        columns = cluster.kubectl(*words[1:], check=True).stdout
        print(f"\n$ {command}\n{columns}")
        assert [ns, "web", "Up", "default", "Up in 1 of 1 locations"] in [
            line.split(maxsplit=4) for line in columns.splitlines()
        ]
        # The Argo CD health check of docs/gitops.md on the live objects.
        live = get(cluster, ns, "web")
        assert argocd_health(live)["status"] == "Healthy"
        # No finalizers: uninstalling the operator can never block deleting a monitor.
        assert "finalizers" not in live["metadata"]
    finally:
        prober.stop()
        active.stop()
    for process in (active, prober):
        assert not forbidden(json_log(process.log_path)), process.log()
    # Both Leases were given up on the way out, so that others take over at once.
    assert not lease(cluster, release.namespace, CONTROLLER_LEASE)
    assert not lease(cluster, release.namespace, "tcpmonitor-runner-runner-default-0")


def test_a_second_controller_stands_by(
    control_plane: Cluster, release: Release, tmp_path: Path
) -> None:
    """controller.replicas=2: the standby is healthy (the chart's readiness probe) but idle."""
    kubeconfig = identity(
        control_plane, release.namespace, release.service_account("controller"), tmp_path
    )
    active = controller(control_plane, release, tmp_path, kubeconfig)
    standby = OperatorProcess(
        control_plane,
        tmp_path,
        *release.args("controller"),
        "--identity=controller-1",
        kubeconfig=kubeconfig,
        wait_ready=False,
    )
    try:
        readiness = container_probe(release, "controller", "readinessProbe")
        eventually(lambda: http_status(standby, readiness) == 200, 10, message="standby healthy")
        assert http_status(standby, "/readyz") == 503
        held = lease(control_plane, release.namespace, CONTROLLER_LEASE)
        assert held["spec"]["holderIdentity"] == "controller-0"
        # The active one gives the Lease up when it stops; the standby takes it at once.
        active.stop()
        eventually(standby.ready, 10, message="the standby takes over")
    finally:
        standby.stop()
        active.stop()
    assert not forbidden(json_log(standby.log_path)), standby.log()


def http_status(process: OperatorProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{process.metrics_port}{path}", timeout=2
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def container_probe(release: Release, component: str, probe: str) -> str:
    (container,) = release.workload(component)["spec"]["template"]["spec"]["containers"]
    path: str = container[probe]["httpGet"]["path"]
    return path


def json_log(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def forbidden(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log records about a request the API server refused for lack of permission.

    Creating an Event in a namespace that is being deleted is also a 403; other tests leave
    such namespaces behind (the harness has no namespace controller), so those don't count.
    """
    refused = []
    for record in records:
        text = record["message"] + record.get("exception", "")
        # A word of its own: "metrics on :41403" is no refusal.
        if re.search(r"\b403\b|Forbidden", text) and "being terminated" not in text:
            refused.append(record)
    return refused


def test_a_remote_location_reports_with_its_own_token(
    control_plane: Cluster,
    release: Release,
    helm: Path,
    helm_home: Path,
    targets: Targets,
    tmp_path: Path,
) -> None:
    """remoteLocations: runners elsewhere (here: a mode=runners release in another namespace,
    standing in for another cluster) report to this API server with the token of the
    ServiceAccount the home release made for them."""
    cluster, ns = control_plane, targets.namespace
    account = f"{RELEASE}-remote-{REMOTE}"
    assert account in release.all("ServiceAccount")
    kubeconfig = identity(cluster, release.namespace, account, tmp_path)
    # Exactly the runners' permissions: no Events, nothing of the controller's Lease role.
    assert can_i(cluster, kubeconfig, "patch", "tcpmonitors", "--subresource=status", "-n", ns)
    assert not can_i(cluster, kubeconfig, "create", "events.events.k8s.io", "-n", ns)
    assert not can_i(cluster, kubeconfig, "update", "leases", "-n", ns)
    # The other side: the kubeconfig in a Secret, and the chart in mode=runners.
    away = f"tcpm-away-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", away, check=True)
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "tcpmonitor-home",
        "-n",
        away,
        f"--from-file=kubeconfig={kubeconfig}",
        check=True,
    )
    try:
        remote = install(
            cluster,
            helm,
            helm_home,
            away,
            "away",
            "--skip-crds",
            "--set",
            "mode=runners",
            "--set",
            f"locations[0].name={REMOTE}",
            "--set",
            "locations[0].replicas=1",
            "--set",
            "remote.kubeconfigSecret.name=tcpmonitor-home",
            "--set",
            f"remote.leaseNamespace={release.namespace}",
        )
        assert {m["kind"] for m in remote.manifest} == {"ServiceAccount", "Service", "Deployment"}
        args = remote.args("runner", REMOTE)
        assert "--kubeconfig=/etc/tcpmonitor/kubeconfig" in args
        assert f"--lease-namespace={release.namespace}" in args
        # The Secret's file is mounted there in the pod; here it is the local file.
        args = [a for a in args if not a.startswith("--kubeconfig")]
        home = identity(cluster, release.namespace, release.service_account("controller"), tmp_path)
        active = controller(cluster, release, tmp_path, home)
        prober = OperatorProcess(
            cluster,
            tmp_path,
            *args,
            "--identity=away-runner-0",
            kubeconfig=kubeconfig,
            command="runner",
        )
        try:
            targets.apply(
                cluster, tcpmonitor(ns, "far", port=targets.listener.port, locations=[REMOTE])
            )
            # Settled: Up, and the controller has seen the remote runner's Lease.
            far = eventually(lambda: settled(cluster, ns, "far"), 20, message="far Up")
            assert location(far, REMOTE)["runner"] == "away-runner-0"
            assert condition(far, "LocationsAvailable")["status"] == "True"
            # No runner of location default is running: the home monitors wait for one.
            eventually(lambda: runnerless(cluster, ns, "web"), 10, message="web: no runner")
        finally:
            prober.stop()
            active.stop()
        assert not forbidden(json_log(prober.log_path)), prober.log()
    finally:
        run_helm(helm, cluster, helm_home, "uninstall", "away", "--namespace", away, check=False)
        cluster.kubectl("delete", "namespace", away, "--wait=false")


def test_namespaced_rbac_reconciles_only_the_watched_namespace(
    control_plane: Cluster,
    helm: Path,
    helm_home: Path,
    targets: Targets,
    tmp_path: Path,
) -> None:
    """rbac.namespaced: Roles in the watched namespace, no cluster-wide permission at all."""
    cluster = control_plane
    home = f"tcpm-ns-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", home, check=True)
    name = "scoped"
    try:
        scoped = install(
            cluster,
            helm,
            helm_home,
            home,
            name,
            "--set",
            f"watchNamespaces={{{targets.namespace}}}",
            "--set",
            "rbac.namespaced=true",
        )
        assert {m["kind"] for m in scoped.manifest} >= {"Role", "RoleBinding"}
        assert not {m["kind"] for m in scoped.manifest} & {"ClusterRole", "ClusterRoleBinding"}
        controller_kubeconfig = identity(
            cluster, home, scoped.service_account("controller"), tmp_path
        )
        runner_kubeconfig = identity(
            cluster, home, scoped.service_account("runner", "default"), tmp_path
        )
        for kubeconfig in (controller_kubeconfig, runner_kubeconfig):
            assert can_i(cluster, kubeconfig, "list", "tcpmonitors", "-n", targets.namespace)
            assert not can_i(cluster, kubeconfig, "list", "tcpmonitors", "--all-namespaces")
            assert not can_i(cluster, kubeconfig, "get", "secrets", "-n", home)
            assert can_i(cluster, kubeconfig, "list", "leases", "-n", home)
            assert not can_i(cluster, kubeconfig, "list", "leases", "-n", targets.namespace)
        for component in ("controller", "runner"):
            assert f"--namespace={targets.namespace}" in scoped.args(component)
        active = controller(cluster, scoped, tmp_path, controller_kubeconfig)
        prober = runner(cluster, scoped, tmp_path, runner_kubeconfig)
        try:
            apply(cluster, tcpmonitor(home, "elsewhere", port=targets.listener.port))
            targets.apply(cluster)
            eventually(lambda: up(cluster, targets.namespace, "web"), 20, message="Up")
            eventually(lambda: up(cluster, targets.namespace, "kubernetes-api"), 20, message="Up")
            assert not status(cluster, home, "elsewhere")  # not watched, not touched
        finally:
            prober.stop()
            active.stop()
        for process in (active, prober):
            assert not forbidden(json_log(process.log_path)), process.log()
        # `helm upgrade` as docs/install.md has it.
        upgraded = run_helm(
            helm,
            cluster,
            helm_home,
            "upgrade",
            name,
            str(CHART),
            "--namespace",
            home,
            "--reuse-values",
            "--set",
            "logLevel=debug",
        )
        assert "STATUS: deployed" in upgraded and "REVISION: 2" in upgraded
        for deployment in (
            f"{name}-tcpmonitor-operator-controller",
            f"{name}-tcpmonitor-operator-runner-default",
        ):
            live = get(cluster, home, deployment, "deployment")
            (container,) = live["spec"]["template"]["spec"]["containers"]
            assert "--log-level=debug" in container["args"]
    finally:
        run_helm(helm, cluster, helm_home, "uninstall", name, "--namespace", home, check=False)
        cluster.kubectl("delete", "namespace", home, "--wait=false")


def test_all_in_one_with_the_chart_identity_reconciles_end_to_end(
    control_plane: Cluster,
    all_in_one: Release,
    targets: Targets,
    tmp_path: Path,
) -> None:
    cluster, ns = control_plane, targets.namespace
    rollout = f"rollout status deployment/{all_in_one.name}-tcpmonitor-operator\n"
    assert f"kubectl -n {all_in_one.namespace} {rollout}" in all_in_one.install_output
    assert sorted(m["kind"] for m in all_in_one.manifest) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    kubeconfig = identity(
        cluster, all_in_one.namespace, all_in_one.service_account("operator"), tmp_path
    )
    assert not any(
        a.startswith(("--namespace", "--mode", "--lease")) for a in all_in_one.args("operator")
    )
    operator = OperatorProcess(
        cluster, tmp_path, *all_in_one.args("operator"), kubeconfig=kubeconfig
    )
    try:
        targets.apply(cluster)
        web = eventually(lambda: up(cluster, ns, "web"), 15, message="web Up")
        api = eventually(lambda: up(cluster, ns, "kubernetes-api"), 15, message="api Up")
        assert web["lastResult"]["response"]["excerpt"].startswith("hi there")
        assert api["lastResult"]["tls"]["verified"] is True
        for st in (web, api):
            assert condition(st, "Ready")["status"] == "True"
            assert condition(st, "Reachable")["status"] == "True"
        eventually(
            lambda: {"TargetUp"} <= set(reasons(cluster, ns, "web")),
            10,
            message="TargetUp event",
        )
        assert operator.metric("tcpmonitor_probe_success", namespace=ns, name="web") == 1
        assert argocd_health(get(cluster, ns, "web"))["status"] == "Healthy"
    finally:
        operator.stop()
    assert not forbidden(json_log(operator.log_path)), operator.log()


# -- each rule is necessary ---------------------------------------------------------------------


class BareProcess:
    """``tcpmonitor operator|runner`` that is not expected to become ready: some failures keep
    /readyz from ever answering, so this waits for nothing and only collects the log."""

    def __init__(self, command: str, kubeconfig: Path, log_dir: Path, *args: str) -> None:
        self.log_path = log_dir / f"{command}-under-test.log"
        self._log = self.log_path.open("w")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["POD_NAME"] = "tcpmonitor-rbac"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcpmonitor",
                command,
                "--kubeconfig",
                str(kubeconfig),
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                str(free_port()),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def records(self) -> list[dict[str, Any]]:
        if not self._log.closed:
            self._log.flush()
        return json_log(self.log_path)

    def logged(self, *fragments: str) -> dict[str, Any] | None:
        for record in self.records():
            text = record["message"] + record.get("exception", "")
            if all(f in text for f in fragments):
                return record
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


SUBJECT = "subject-0"  # the identity of the process under test


@dataclass
class Scene:
    """One rule-removal test: the process without the rule, and its working partner."""

    cluster: Cluster
    ns: str  # the monitors' namespace, also where the Leases are kept
    process: BareProcess
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


def unreadable(name: str, reference: str) -> Callable[[Scene], bool]:
    """Ready=False with the 403 in the message, for this monitor only."""

    def check(scene: Scene) -> bool:
        ready = condition(scene.status(name), "Ready")
        other = "kubernetes-api" if name == "web" else "web"
        return (
            ready.get("status") == "False"
            and ready.get("reason") == "ReferenceUnreadable"
            and f"{reference.format(ns=scene.ns)}: 403 Forbidden" in ready.get("message", "")
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
        st.get("message") == "no location has reported yet"
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
            and f"{reference.format(ns=scene.ns)}: 403 Forbidden" in entry.get("message", "")
            and location(scene.status(other)).get("state") == "Up"
        )

    return check


def controller_unreadable(name: str, reference: str) -> Callable[[Scene], bool]:
    """The controller refuses the spec (Ready=False) although the runner probes it fine."""

    def check(scene: Scene) -> bool:
        st = scene.status(name)
        return unreadable(name, reference)(scene) and location(st).get("state") == "Up"

    return check


def exited(scene: Scene) -> bool:
    return scene.process.process.poll() == 1


TCPMONITORS_LIST = ("tcpmonitor.dev", "tcpmonitors", "list")
TCPMONITORS_WATCH = ("tcpmonitor.dev", "tcpmonitors", "watch")
STATUS_PATCH = ("tcpmonitor.dev", "tcpmonitors/status", "patch")
EVENTS_CREATE = ("events.k8s.io", "events", "create")
SECRETS_GET = ("", "secrets", "get")
CONFIGMAPS_GET = ("", "configmaps", "get")


def leases(verb: str) -> Rule:
    return ("coordination.k8s.io", "leases", verb)


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
            unreadable("web", "Secret {ns}/payload"),
        ),
        CONFIGMAPS_GET: Failure(
            ("{ns}/kubernetes-api failed: ConfigMap {ns}/kube-root-ca.crt: 403 Forbidden",),
            unreadable("kubernetes-api", "ConfigMap {ns}/kube-root-ca.crt"),
        ),
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
        # not in its log.
        SECRETS_GET: Failure((), controller_unreadable("web", "Secret {ns}/payload")),
        CONFIGMAPS_GET: Failure(
            (), controller_unreadable("kubernetes-api", "ConfigMap {ns}/kube-root-ca.crt")
        ),
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
        # It creates the Lease and acts, cannot renew it, and stops (the pod restarts).
        leases("update"): Failure(
            ("leader election renewal: ", 'cannot update resource "leases"'), exited
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
            runner_unreadable("web", "Secret {ns}/payload"),
        ),
        CONFIGMAPS_GET: Failure(
            ("{ns}/kubernetes-api failed: ConfigMap {ns}/kube-root-ca.crt: 403 Forbidden",),
            runner_unreadable("kubernetes-api", "ConfigMap {ns}/kube-root-ca.crt"),
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


def chart_grants(cluster: Cluster, release: Release, component: str) -> Grants:
    name = release.service_account(component, "default" if component == "runner" else None)
    cluster_role = f"{release.namespace}-{name}"
    assert cluster_role in release.all("ClusterRole")
    lease_rules = []
    if f"{name}-leases" in release.all("Role"):
        lease_rules = live_rules(cluster, "role", f"{name}-leases", release.namespace)
    return Grants(live_rules(cluster, "clusterrole", cluster_role), lease_rules)


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
        process = BareProcess(
            command,
            kubeconfig,
            tmp_path,
            *home.args(component, "default" if role == "runner" else None),
            f"--identity={SUBJECT}",
            *overrides,
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
        assert not forbidden(json_log(partner.log_path)), partner.log()
