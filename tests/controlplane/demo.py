"""``python -m tests.controlplane --demo``: the operator at work, with no cluster of one's own.

Starts the test control plane, installs the CRDs, allows loopback targets (a TcpMonitorPolicy:
the operator refuses them otherwise), starts two local targets (one that stays up, one that
goes down and comes back every 20 s), applies the examples and two monitors of those targets,
runs ``tcpmonitor operator`` as a process and streams ``kubectl get tcpmonitors -A -w``.
Ctrl-C (or SIGTERM) stops everything it started, in reverse order.

The examples name in-cluster services (``redis.cache.svc.cluster.local``, ...) that do not
exist here: they show as Down with the reason (``DNS_NOT_FOUND``), which is what they would
show in a cluster without those services. ``--no-examples`` leaves them out (no name lookups
leave the machine then).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.controlplane.build import REPO_ROOT
from tests.controlplane.cluster import Cluster

EXAMPLES = REPO_ROOT / "examples"
DEMO_NAMESPACE = "demo"
FLAP_SECONDS = 20.0


class _Target:
    """A loopback listener answering "hello"; ``flapping`` closes it every FLAP_SECONDS."""

    def __init__(self, *, flapping: bool) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.flapping = flapping
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> _Target:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._serve(until=time.monotonic() + (FLAP_SECONDS if self.flapping else 1e9))
            if self.flapping:
                self._stop.wait(FLAP_SECONDS)  # down for a while

    def _serve(self, until: float) -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(16)
            sock.settimeout(0.2)
            while not self._stop.is_set() and time.monotonic() < until:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                with conn, contextlib.suppress(OSError):
                    conn.sendall(b"hello from the tcpmonitor demo\n")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def _monitor(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": DEMO_NAMESPACE},
        "spec": {
            "host": "127.0.0.1",
            "port": port,
            "interval": "5s",
            "timeout": "2s",
            "assertions": [{"source": "ResponseData", "comparison": "Contains", "target": "hello"}],
        },
    }


def example_monitors() -> list[dict[str, Any]]:
    """The TcpMonitors of examples/ (not the policy example: it would refuse the demo's own)."""
    docs = [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    return [doc for doc in docs if doc.get("kind") == "TcpMonitor"]


def _apply(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    cluster.kubectl(
        "apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects), check=True
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _process(argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, **kwargs)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_demo(cluster: Cluster, workdir: Path, *, examples: bool) -> None:
    """Everything after the control plane is up; returns on KeyboardInterrupt."""
    cluster.allow_loopback_targets()
    objects = example_monitors() if examples else []
    namespaces = sorted({o["metadata"]["namespace"] for o in objects} | {DEMO_NAMESPACE})
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)  # may exist
    steady, flapping = _Target(flapping=False).start(), _Target(flapping=True).start()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "operator"), env.get("PYTHONPATH")])
    )
    metrics_port = _free_port()
    operator_log = workdir / "operator.log"
    try:
        with (
            operator_log.open("w") as log,
            _process(
                [
                    *(sys.executable, "-m", "tcpmonitor", "operator"),
                    *("--kubeconfig", str(cluster.kubeconfig)),
                    *("--metrics-address", "127.0.0.1", "--metrics-port", str(metrics_port)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            ) as operator,
        ):
            _apply(
                cluster,
                [_monitor("steady", steady.port), _monitor("flapping", flapping.port), *objects],
            )
            print(f"operator: pid {operator.pid}, log {operator_log}, metrics")
            print(f"  http://127.0.0.1:{metrics_port}/metrics")
            print(f"demo/flapping goes down and comes back every {FLAP_SECONDS:.0f}s.")
            print("Ctrl-C stops the watch, the operator, the targets and the control plane.")
            print(flush=True)
            with _process(
                [
                    *(str(cluster.kubectl_binary), f"--kubeconfig={cluster.kubeconfig}"),
                    *("get", "tcpmonitors", "--all-namespaces", "--watch"),
                ],
                env=env,
            ) as watch:
                while operator.poll() is None and watch.poll() is None:
                    time.sleep(0.5)
                if operator.poll() is not None:
                    print(f"the operator stopped; its log: {operator_log}", file=sys.stderr)
    finally:
        steady.stop()
        flapping.stop()
