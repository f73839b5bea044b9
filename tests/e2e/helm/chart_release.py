"""The chart installed on the test cluster, and its processes run with its identities.

The harness has no kubelet, so the chart's pods never run: each process runs locally with a
token for its Deployment's ServiceAccount and the Deployment's arguments.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.controlplane import Cluster

from ..operator_process import Listener, OperatorProcess, apply, condition, get, status, tcpmonitor

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "tcpmonitor-operator"
RELEASE = "tcpmonitor-operator"
REMOTE = "remote"  # the remote location of the default release
CONTROLLER_LEASE = "tcpmonitor-controller"

Manifest = dict[str, Any]


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


def up(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    st = status(cluster, namespace, name)
    return st if st.get("state") == "Up" else None


def settled(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The status once Up in its one location, with a live runner there."""
    st = status(cluster, namespace, name)
    available = condition(st, "LocationsAvailable").get("status") == "True"
    return st if st.get("state") == "Up" and available and st.get("locations") else None


def runnerless(cluster: Cluster, namespace: str, name: str) -> bool:
    """The controller reports a location of the monitor without a live runner."""
    available = condition(status(cluster, namespace, name), "LocationsAvailable")
    return available.get("status") == "False" and available.get("reason") == "NoLiveRunner"


def location(st: dict[str, Any], name: str = "default") -> dict[str, Any]:
    """A location's entry of status.locations, or {}."""
    return next((e for e in st.get("locations") or [] if e["name"] == name), {})


def lease(cluster: Cluster, namespace: str, name: str) -> Manifest:
    return get(cluster, namespace, name, "lease")


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
