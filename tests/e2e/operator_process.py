"""The operator as a real process against the test cluster, plus helpers to watch its effects."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.controlplane import Cluster

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(
    fn: Callable[[], T | None], timeout: float, interval: float = 0.1, message: str = "condition"
) -> T:
    """Poll ``fn`` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout}s (last: {last!r})")


class OperatorProcess:
    """``tcpmonitor operator`` in a subprocess, its log in a file for post-mortems."""

    def __init__(
        self,
        cluster: Cluster,
        log_dir: Path,
        *extra: str,
        kubeconfig: Path | None = None,
        command: str = "operator",
        wait_ready: bool = True,
    ) -> None:
        self.metrics_port = free_port()
        self.log_path = log_dir / f"operator-{self.metrics_port}.log"
        self._log = self.log_path.open("w")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["POD_NAME"] = "tcpmonitor-operator-e2e"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcpmonitor",
                command,
                "--kubeconfig",
                str(kubeconfig or cluster.kubeconfig),
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                str(self.metrics_port),
                "--log-level",
                "debug",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        if wait_ready:
            eventually(self.ready, 30, message=f"{command} /readyz")

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        assert self.process.poll() is None, self.log()
        return self._get("/readyz")[0] == 200

    def http_status(self, path: str) -> int:
        """The status code of GET ``path`` on the metrics port; 0 when nothing answers."""
        return self._get(path)[0]

    def metrics(self) -> str:
        return self._get("/metrics")[1]

    def series(self, metric: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every series of ``metric`` from one scrape, keyed by its label pairs."""
        out = {}
        for line in self.metrics().splitlines():
            if line.startswith(metric + "{"):
                labels, value = line.rsplit(" ", 1)
                pairs = labels[len(metric) + 1 : -1].split(",")
                out[frozenset(tuple(p.split("=", 1)) for p in pairs)] = float(value)
        return {frozenset((k, v.strip('"')) for k, v in key): value for key, value in out.items()}

    def metric(self, metric: str, **labels: str) -> float | None:
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith(metric + "{"):
                series, value = line.rsplit(" ", 1)
                got = ",".join(sorted(series[len(metric) + 1 : -1].split(",")))
                if got == wanted:
                    return float(value)
        return None

    def metric_value(self, metric: str) -> float | None:
        """The value of a metric without labels; None when absent or nothing answers."""
        for line in self.metrics().splitlines():
            name, _, value = line.partition(" ")
            if name == metric:
                return float(value)
        return None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()[-5000:]

    def records(self) -> list[dict[str, Any]]:
        """The log's JSON records (``--log-format=json``), so far."""
        if not self._log.closed:
            self._log.flush()
        return [
            json.loads(line)
            for line in self.log_path.read_text().splitlines()
            if line.startswith("{")
        ]

    def logged(self, *fragments: str) -> dict[str, Any] | None:
        """The first record whose message or exception contains every fragment."""
        for record in self.records():
            text = record["message"] + record.get("exception", "")
            if all(f in text for f in fragments):
                return record
        return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> float:
        """Signal the operator and return how long it took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return time.monotonic() - started


class Listener:
    """A loopback TCP server in a thread that greets, and can be stopped and restarted on the
    same port (a target going down and coming back)."""

    def __init__(self, greeting: bytes = b"hello\n") -> None:
        self.greeting = greeting
        self.port = free_port()
        self.accepted: list[float] = []  # monotonic times of the connections accepted
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Listener:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(256)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()
        return self

    def _serve(self, sock: socket.socket) -> None:
        while self._sock is sock:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            try:
                conn.sendall(self.greeting)
            except OSError:
                pass
            finally:
                conn.close()

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self._thread is not None:
            self._thread.join(2)


def tcpmonitor(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("host", "127.0.0.1")
    spec.setdefault("interval", "2s")
    spec.setdefault("timeout", "1s")
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl(
        "apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects), check=True
    )


def get(cluster: Cluster, namespace: str, name: str, kind: str = "tcpmonitor") -> dict[str, Any]:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get(cluster, namespace, name).get("status") or {}


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions", []) if c["type"] == type_), {})


def events(cluster: Cluster, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "events.events.k8s.io", "-n", namespace, "-o", "json", check=True)
    items = json.loads(out.stdout)["items"]
    return [e for e in items if name is None or e["regarding"]["name"] == name]


def reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    found = events(cluster, namespace, name)
    return [e["reason"] for e in sorted(found, key=lambda e: e["eventTime"])]


def state_is(cluster: Cluster, namespace: str, name: str, state: str) -> dict[str, Any] | None:
    """The status when the monitor is in ``state``, for eventually()."""
    st = status(cluster, namespace, name)
    return st if st.get("state") == state else None
