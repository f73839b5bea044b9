"""The Helm chart on the real control plane, and the operator with exactly the chart's RBAC.

The harness has no kubelet, so the chart's pod never runs. Instead the operator runs as a local
process with the identity the pod would have: a token for the chart's ServiceAccount from the
TokenRequest API, and the command-line arguments of the chart's Deployment. It must reconcile
monitors end to end with that identity (the RBAC is sufficient), and with any one verb of the
chart's rules removed it must fail in a way a user sees (the RBAC is not wider than needed).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    """An installed release: its namespace, its manifest, and what the operator pod would get."""

    name: str
    namespace: str
    install_output: str
    manifest: tuple[Manifest, ...]

    def one(self, kind: str) -> Manifest:
        (found,) = [m for m in self.manifest if m["kind"] == kind]
        return found

    @property
    def service_account(self) -> str:
        pod = self.one("Deployment")["spec"]["template"]["spec"]
        return str(pod["serviceAccountName"])

    @property
    def operator_args(self) -> list[str]:
        """The Deployment's arguments, less the sub-command and the listen address and port
        (OperatorProcess picks a free loopback port)."""
        (container,) = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        args: list[str] = container["args"]
        assert args[0] == "operator"
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
    """The chart with default values (plus the dashboard), in a namespace of its own."""
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
    )
    yield installed
    run_helm(helm, control_plane, helm_home, "uninstall", RELEASE, "--namespace", namespace)
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


# -- the targets and monitors: every kind of API access the operator has ----------------------


@dataclass(frozen=True)
class Targets:
    """Monitors that use every permission: a payload from a Secret, a CA from a ConfigMap.

    ``web`` sends a Secret's bytes to a loopback listener; ``api`` verifies the API server's
    certificate against a CA bundle in a ConfigMap (the harness has no kube-root-ca.crt
    publisher, so the test publishes the cluster CA the same way).
    """

    namespace: str
    listener: Listener

    def apply(self, cluster: Cluster) -> None:
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
        )


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


# -- install ------------------------------------------------------------------------------------


def test_helm_install_creates_the_chart_objects(control_plane: Cluster, release: Release) -> None:
    assert "STATUS: deployed" in release.install_output
    notes = release.install_output.split("NOTES:", 1)[1]
    assert f"kubectl -n {release.namespace} rollout status deployment/{RELEASE}" in notes
    kinds = sorted(m["kind"] for m in release.manifest)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    for manifest in release.manifest:
        args = [f"{manifest['kind']}/{manifest['metadata']['name']}", "-o", "json"]
        if "namespace" in manifest["metadata"]:
            args += ["-n", manifest["metadata"]["namespace"]]
        live = json.loads(control_plane.kubectl("get", *args, check=True).stdout)
        assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # The API server kept the pod security settings as rendered (nothing dropped or defaulted).
    deployment = get(control_plane, release.namespace, RELEASE, "deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


# -- the operator with the chart's identity -----------------------------------------------------


def test_operator_with_the_chart_identity_reconciles_end_to_end(
    control_plane: Cluster,
    release: Release,
    targets: Targets,
    tmp_path: Path,
) -> None:
    kubeconfig = identity(control_plane, release.namespace, release.service_account, tmp_path)
    # Exactly the Deployment's arguments: all namespaces, JSON logs at info.
    assert not any(a.startswith("--namespace") for a in release.operator_args)
    operator = OperatorProcess(
        control_plane, tmp_path, *release.operator_args, kubeconfig=kubeconfig
    )
    try:
        targets.apply(control_plane)
        ns = targets.namespace
        web = eventually(lambda: up(control_plane, ns, "web"), 15, message="web Up")
        api = eventually(lambda: up(control_plane, ns, "kubernetes-api"), 15, message="api Up")
        assert web["lastResult"]["response"]["excerpt"].startswith("hi there")
        assert api["lastResult"]["tls"]["verified"] is True
        for st in (web, api):
            assert condition(st, "Ready")["status"] == "True"
            assert condition(st, "Reachable")["status"] == "True"
        eventually(
            lambda: {"TargetUp"} <= set(reasons(control_plane, ns, "web")),
            10,
            message="TargetUp event",
        )
        assert operator.metric("tcpmonitor_probe_success", namespace=ns, name="web") == 1
        # What users see, pasted into docs/install.md.
        table = control_plane.kubectl("get", "tcpm", "-n", ns, check=True).stdout
        print(f"\n$ kubectl get tcpm -n {ns}\n{table}")
        assert table.split()[:7] == ["NAME", "HOST", "PORT", "STATE", "LATENCY", "LAST", "PROBE"]
        # The Argo CD health check of docs/gitops.md on the live objects.
        live = get(control_plane, ns, "web")
        assert argocd_health(live)["status"] == "Healthy"
        # No finalizers: uninstalling the operator can never block deleting a monitor.
        assert "finalizers" not in live["metadata"]
    finally:
        operator.stop()
    assert not forbidden(json_log(operator.log_path)), operator.log()


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
        if ("403" in text or "Forbidden" in text) and "being terminated" not in text:
            refused.append(record)
    return refused


def test_namespaced_rbac_reconciles_only_the_watched_namespace(
    control_plane: Cluster,
    helm: Path,
    helm_home: Path,
    targets: Targets,
    tmp_path: Path,
) -> None:
    """rbac.namespaced: a Role in the watched namespace, no cluster-wide permission at all."""
    home = f"tcpm-ns-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", home, check=True)
    name = "scoped"
    try:
        scoped = install(
            control_plane,
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
        kubeconfig = identity(control_plane, home, scoped.service_account, tmp_path)
        assert can_i(control_plane, kubeconfig, "list", "tcpmonitors", "-n", targets.namespace)
        assert not can_i(control_plane, kubeconfig, "list", "tcpmonitors", "--all-namespaces")
        assert not can_i(control_plane, kubeconfig, "get", "secrets", "-n", home)
        assert f"--namespace={targets.namespace}" in scoped.operator_args
        operator = OperatorProcess(
            control_plane, tmp_path, *scoped.operator_args, kubeconfig=kubeconfig
        )
        try:
            apply(control_plane, tcpmonitor(home, "elsewhere", port=targets.listener.port))
            targets.apply(control_plane)
            eventually(lambda: up(control_plane, targets.namespace, "web"), 15, message="Up")
            eventually(
                lambda: up(control_plane, targets.namespace, "kubernetes-api"), 15, message="Up"
            )
            assert not status(control_plane, home, "elsewhere")  # not watched, not touched
        finally:
            operator.stop()
        assert not forbidden(json_log(operator.log_path)), operator.log()
        # `helm upgrade` as docs/install.md has it.
        upgraded = run_helm(
            helm,
            control_plane,
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
        deployment = get(control_plane, home, f"{name}-tcpmonitor-operator", "deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "--log-level=debug" in container["args"]
    finally:
        run_helm(
            helm, control_plane, helm_home, "uninstall", name, "--namespace", home, check=False
        )
        control_plane.kubectl("delete", "namespace", home, "--wait=false")


# -- each rule is necessary ---------------------------------------------------------------------


class BareOperator:
    """``tcpmonitor operator`` that is not expected to become ready: some failures keep
    /readyz from ever answering, so this waits for nothing and only collects the log."""

    def __init__(self, kubeconfig: Path, log_dir: Path, *args: str) -> None:
        self.log_path = log_dir / "operator.log"
        self._log = self.log_path.open("w")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["POD_NAME"] = "tcpmonitor-operator-rbac"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcpmonitor",
                "operator",
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
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass(frozen=True)
class Failure:
    """How the operator fails without a rule: what the log says, and what the objects show."""

    log: tuple[str, ...]
    check: Callable[[Cluster, str], bool]


def no_status(cluster: Cluster, ns: str) -> bool:
    return not status(cluster, ns, "web") and not status(cluster, ns, "kubernetes-api")


def unreadable(name: str, reference: str) -> Callable[[Cluster, str], bool]:
    def check(cluster: Cluster, ns: str) -> bool:
        ready = condition(status(cluster, ns, name), "Ready")
        return (
            ready.get("status") == "False"
            and ready.get("reason") == "ReferenceUnreadable"
            and f"{reference.format(ns=ns)}: 403 Forbidden" in ready.get("message", "")
            # ... and only that monitor: the other is still probed.
            and up(cluster, ns, "kubernetes-api" if name == "web" else "web") is not None
        )

    return check


def up_without_events(cluster: Cluster, ns: str) -> bool:
    return (
        up(cluster, ns, "web") is not None
        and not reasons(cluster, ns, "web")
        and not reasons(cluster, ns, "kubernetes-api")
    )


# What a user sees in the operator's log (JSON lines) when one verb is missing, and on the
# objects; {ns} is the test namespace. The Event failure's log carries the API server's JSON
# reply, hence the escaped quotes.
FAILURES: dict[Rule, Failure] = {
    ("tcpmonitor.dev", "tcpmonitors", "list"): Failure(
        ("APIForbiddenError", 'cannot list resource "tcpmonitors"'), no_status
    ),
    ("tcpmonitor.dev", "tcpmonitors", "watch"): Failure(
        ("APIForbiddenError", 'cannot watch resource "tcpmonitors"'),
        # The initial list works, so monitors are probed once; changes are never seen.
        lambda cluster, ns: up(cluster, ns, "web") is not None,
    ),
    ("tcpmonitor.dev", "tcpmonitors/status", "patch"): Failure(
        ("{ns}/web failed: 403 Forbidden",), no_status
    ),
    ("events.k8s.io", "events", "create"): Failure(
        ("posting TargetUp event for {ns}/", 'cannot create resource \\"events\\"'),
        up_without_events,
    ),
    ("", "secrets", "get"): Failure(
        ("{ns}/web failed: Secret {ns}/payload: 403 Forbidden",),
        unreadable("web", "Secret {ns}/payload"),
    ),
    ("", "configmaps", "get"): Failure(
        ("{ns}/kubernetes-api failed: ConfigMap {ns}/kube-root-ca.crt: 403 Forbidden",),
        unreadable("kubernetes-api", "ConfigMap {ns}/kube-root-ca.crt"),
    ),
}


def chart_rules(cluster: Cluster, release: Release) -> list[dict[str, Any]]:
    name = release.one("ClusterRole")["metadata"]["name"]
    live = json.loads(cluster.kubectl("get", "clusterrole", name, "-o", "json", check=True).stdout)
    rules: list[dict[str, Any]] = live["rules"]
    return rules


def flatten(rules: list[dict[str, Any]]) -> set[Rule]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_chart_grants_exactly_the_verbs_tested_below(
    control_plane: Cluster, release: Release
) -> None:
    """A verb added to the chart without a failure case below fails here: every permission
    must be shown to be needed."""
    assert flatten(chart_rules(control_plane, release)) == set(FAILURES)


def without(rules: list[dict[str, Any]], removed: Rule) -> list[dict[str, Any]]:
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


@pytest.mark.parametrize("removed", list(FAILURES), ids=lambda r: f"{r[1]}-{r[2]}")
def test_without_a_rule_the_operator_fails_visibly(
    control_plane: Cluster,
    release: Release,
    targets: Targets,
    tmp_path: Path,
    removed: Rule,
) -> None:
    failure = FAILURES[removed]
    ns = targets.namespace
    name = f"{release.namespace}-without-{removed[1].replace('/', '-')}-{removed[2]}"
    account = f"without-{removed[1].replace('/', '-')}-{removed[2]}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": without(chart_rules(control_plane, release), removed),
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": release.namespace}],
    }
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": account, "namespace": release.namespace},
    }
    apply(control_plane, sa, role, binding)
    operator: BareOperator | None = None
    try:
        kubeconfig = identity(control_plane, release.namespace, account, tmp_path)
        targets.apply(control_plane)
        # The chart's arguments, limited to the test namespace so that only these monitors count.
        operator = BareOperator(kubeconfig, tmp_path, *release.operator_args, f"--namespace={ns}")
        fragments = tuple(f.format(ns=ns) for f in failure.log)
        record = eventually(lambda: operator.logged(*fragments), 20, message=f"log {fragments}")
        assert record["level"] in ("warning", "error"), record
        eventually(lambda: failure.check(control_plane, ns), 10, message="visible failure")
        print(f"\nwithout {removed}: {record['level']} {record['logger']}: {record['message']}")
    finally:
        if operator is not None:
            operator.stop()
        control_plane.kubectl("delete", "clusterrolebinding,clusterrole", name, "--wait=false")
