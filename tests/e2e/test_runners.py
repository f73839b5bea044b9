"""Runners in locations, sharding, failover and the controller standby, on the real control plane.

Processes: controllers in ``--mode controller`` and runners, all watching one test namespace
and keeping their Leases there. Short lease durations and intervals keep the test fast; the
bench (bench/runners_cluster.py) measures the same things at scale.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.controlplane import Cluster

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    condition,
    eventually,
    get,
    reasons,
    status,
    tcpmonitor,
)

LEASE = "6s"
INTERVAL = 2.0


class Fleet:
    """The processes of one test, stopped together."""

    def __init__(self, cluster: Cluster, namespace: str, log_dir: Path) -> None:
        self.cluster, self.namespace, self.log_dir = cluster, namespace, log_dir
        self.processes: list[OperatorProcess] = []

    def _common(self) -> list[str]:
        return [
            "--namespace",
            self.namespace,
            "--lease-namespace",
            self.namespace,
            "--lease-duration",
            LEASE,
            "--heartbeat",
            "30s",
        ]

    def runner(self, location: str, identity: str) -> OperatorProcess:
        process = OperatorProcess(
            self.cluster,
            self.log_dir,
            "--location",
            location,
            "--identity",
            identity,
            *self._common(),
            command="runner",
        )
        self.processes.append(process)
        return process

    def controller(self, identity: str, *, wait_ready: bool = True) -> OperatorProcess:
        process = OperatorProcess(
            self.cluster,
            self.log_dir,
            "--mode",
            "controller",
            "--leader-election",
            "--identity",
            identity,
            *self._common(),
            wait_ready=wait_ready,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def fleet(control_plane: Cluster, namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(control_plane, namespace, tmp_path)
    yield f
    f.stop()


@pytest.fixture
def target() -> Iterator[Listener]:
    listener = Listener().start()
    yield listener
    listener.stop()


class TlsListener:
    """A loopback TLS server in a thread: reads the request, answers ``hello``, closes."""

    def __init__(self, ca: trustme.CA) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self.context)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            try:
                conn.settimeout(2)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(64)
                    tls.sendall(b"hello\r\n")
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def stop(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


def location(st: dict[str, Any], name: str) -> dict[str, Any]:
    return next((e for e in st.get("locations", []) if e["name"] == name), {})


def monitors(n: int, namespace: str, port: int, **spec: Any) -> list[dict[str, Any]]:
    return [
        tcpmonitor(
            namespace, f"m{i:03d}", port=port, interval=f"{INTERVAL:g}s", timeout="1s", **spec
        )
        for i in range(n)
    ]


def runner_of(cluster: Cluster, namespace: str, loc: str) -> dict[str, str]:
    out = cluster.kubectl("get", "tcpmonitors", "-n", namespace, "-o", "json", check=True)
    return {
        item["metadata"]["name"]: location(item.get("status") or {}, loc).get("runner", "")
        for item in json.loads(out.stdout)["items"]
    }


def test_locations_quorum_and_unavailable_location(
    control_plane: Cluster, namespace: str, fleet: Fleet, target: Listener
) -> None:
    fleet.controller("controller-a")
    fleet.runner("eu", "eu-1")
    fleet.runner("eu", "eu-2")
    fleet.runner("us", "us-1")
    apply(
        control_plane,
        tcpmonitor(
            namespace,
            "up",
            port=target.port,
            locations=["eu", "us"],
            minFailedLocations=2,
            interval="2s",
            timeout="1s",
        ),
        tcpmonitor(
            namespace,
            "down",
            port=1,
            locations=["eu", "us"],
            minFailedLocations=2,
            interval="2s",
            timeout="1s",
        ),
        tcpmonitor(
            namespace,
            "nowhere",
            port=target.port,
            locations=["eu", "ap"],
            interval="2s",
            timeout="1s",
        ),
    )

    def settled(name: str, state: str) -> dict[str, Any] | None:
        st = status(control_plane, namespace, name)
        return st if st.get("state") == state and len(st.get("locations", [])) >= 2 else None

    up = eventually(
        lambda: (st := settled("up", "Up")) and st["message"] == "Up in 2 of 2 locations" and st,
        20,
        message="up: Up in both locations, every location with a live runner",
    )
    assert {e["name"]: e["state"] for e in up["locations"]} == {"eu": "Up", "us": "Up"}
    assert location(up, "eu")["runner"] in ("eu-1", "eu-2")
    assert location(up, "us")["runner"] == "us-1"
    assert condition(up, "LocationsAvailable")["status"] == "True"

    down = eventually(lambda: settled("down", "Down"), 20, message="down: quorum reached")
    assert "Down in 2 of 2 locations (quorum 2)" in down["message"]
    assert location(down, "eu")["errorCode"] == "CONNECTION_REFUSED"
    assert condition(down, "Reachable")["status"] == "False"

    nowhere = eventually(
        lambda: (
            (st := status(control_plane, namespace, "nowhere"))
            and condition(st, "LocationsAvailable").get("status") == "False"
            and st
        ),
        20,
        message="a location without runners is reported",
    )
    assert "ap" in condition(nowhere, "LocationsAvailable")["message"]
    assert [e["name"] for e in nowhere.get("locations", [])] == ["eu"]
    eventually(
        lambda: "LocationUnavailable" in reasons(control_plane, namespace, "nowhere"),
        10,
        message="LocationUnavailable event",
    )


def test_sigkill_reassignment_scale_up_and_no_duplicates(
    control_plane: Cluster, namespace: str, fleet: Fleet, target: Listener
) -> None:
    fleet.controller("controller-a")
    eu1, eu2 = fleet.runner("eu", "eu-1"), fleet.runner("eu", "eu-2")
    count = 60
    apply(control_plane, *monitors(count, namespace, target.port, locations=["eu"]))
    owners = eventually(
        lambda: (
            (o := runner_of(control_plane, namespace, "eu"))
            and all(o.values())
            and len(o) == count
            and o
        ),
        30,
        message="every monitor probed in eu",
    )
    assert set(owners.values()) == {"eu-1", "eu-2"}

    # No duplicates in steady state: each monitor's probes come from one runner only.
    def probes(process: OperatorProcess) -> dict[str, float]:
        series = process.series("tcpmonitor_probes_total")
        return {
            f"m{i:03d}": series.get(
                frozenset({("namespace", namespace), ("name", f"m{i:03d}"), ("result", "Up")}), 0.0
            )
            for i in range(count)
        }

    time.sleep(INTERVAL)
    before = [probes(eu1), probes(eu2)]
    time.sleep(3 * INTERVAL)
    after = [probes(eu1), probes(eu2)]
    deltas = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before, strict=True)]
    duplicates = [k for k in deltas[0] if deltas[0][k] > 0 and deltas[1][k] > 0]
    assert duplicates == []
    per_monitor = [deltas[0][k] + deltas[1][k] for k in deltas[0]]
    assert min(per_monitor) >= 2 and max(per_monitor) <= 4  # three intervals, one runner each

    # SIGKILL: eu-2's monitors are probed again by eu-1 within lease duration + one interval
    # (eu-1's own metrics say when it probed them; status follows within the write budget).
    victims = [name for name, owner in owners.items() if owner == "eu-2"]
    killed = time.monotonic()
    eu2.stop(signal.SIGKILL)
    eventually(
        lambda: all(probes(eu1)[v] > 0 for v in victims),
        6 + INTERVAL + 4,
        0.1,
        message="eu-1 probes eu-2's monitors",
    )
    takeover = time.monotonic() - killed
    assert takeover < 6 + INTERVAL, takeover
    eventually(
        lambda: all(runner_of(control_plane, namespace, "eu")[v] == "eu-1" for v in victims),
        15,
        0.5,
        message="their status names eu-1",
    )

    # Scale up: eu-2 is dead, so eu-3 joins eu-1 alone and takes about half of the monitors;
    # nothing else moves.
    before_owners = runner_of(control_plane, namespace, "eu")
    fleet.runner("eu", "eu-3")
    after_owners = eventually(
        lambda: (o := runner_of(control_plane, namespace, "eu")) and "eu-3" in o.values() and o,
        20,
        message="eu-3 takes a share",
    )
    time.sleep(2 * INTERVAL)
    after_owners = runner_of(control_plane, namespace, "eu")
    moved = [k for k in before_owners if before_owners[k] != after_owners[k]]
    assert all(after_owners[k] == "eu-3" for k in moved)
    # Rendezvous hashing moves each monitor to the newcomer with probability 1/2, on keys
    # that change every run (the namespace is random): moved ~ Binomial(60, 1/2). The bounds
    # 15..45 fail by chance with probability sum(C(60,k) for k<15 or k>45) / 2**60 = 4.2e-5.
    assert 15 <= len(moved) <= 45, len(moved)


def test_standby_controller_takes_over(
    control_plane: Cluster, namespace: str, fleet: Fleet, target: Listener
) -> None:
    active = fleet.controller("controller-a")
    standby = fleet.controller("controller-b", wait_ready=False)
    fleet.runner("eu", "eu-1")
    apply(
        control_plane,
        tcpmonitor(
            namespace, "first", port=target.port, locations=["eu"], interval="2s", timeout="1s"
        ),
    )
    eventually(
        lambda: status(control_plane, namespace, "first").get("state") == "Up",
        20,
        message="first Up",
    )
    eventually(lambda: "standing by" in standby.log(), 10, message="the standby waits")
    assert standby._get("/healthz")[0] == 200 and standby._get("/readyz")[0] == 503
    lease = get(control_plane, namespace, "tcpmonitor-controller", kind="lease")
    assert lease["spec"]["holderIdentity"] == "controller-a"

    stopped = time.monotonic()
    active.stop(signal.SIGKILL)  # no goodbye: the standby waits for the Lease to expire
    apply(
        control_plane,
        tcpmonitor(
            namespace, "second", port=target.port, locations=["eu"], interval="2s", timeout="1s"
        ),
    )
    eventually(
        lambda: status(control_plane, namespace, "second").get("state") == "Up",
        30,
        message="the standby aggregates",
    )
    took = time.monotonic() - stopped
    lease = get(control_plane, namespace, "tcpmonitor-controller", kind="lease")
    assert lease["spec"]["holderIdentity"] == "controller-b"
    assert took < 6 + 6, took  # lease duration + the standby's retry period and a probe


def test_every_location_reports_the_full_result_and_the_deciding_one_is_last_result(
    control_plane: Cluster, namespace: str, fleet: Fleet
) -> None:
    ca = trustme.CA()
    server = TlsListener(ca)
    try:
        fleet.controller("controller-a")
        fleet.runner("eu", "eu-1")
        fleet.runner("us", "us-1")
        apply(
            control_plane,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ca", "namespace": namespace},
                "data": {"ca.crt": ca.cert_pem.bytes().decode()},
            },
            tcpmonitor(
                namespace,
                "payments-db",
                port=server.port,
                locations=["eu", "us"],
                interval="2s",
                timeout="1s",
                send="PING\r\n",
                assertions=[
                    {"source": "ResponseData", "comparison": "Contains", "target": "hello"}
                ],
                tls={"enabled": True, "caConfigMapRef": {"name": "ca", "key": "ca.crt"}},
            ),
        )
        st = eventually(
            lambda: (
                (st := status(control_plane, namespace, "payments-db")).get("state") == "Up"
                and all(location(st, n).get("lastResult") for n in ("eu", "us"))
                and (st.get("lastResult") or {}).get("tls")
                and st
            ),
            30,
            message="Up in both locations, each with its result, and lastResult written",
        )
        for name in ("eu", "us"):
            result = location(st, name)["lastResult"]
            assert result["location"] == name and result["state"] == "Up"
            assert result["remoteAddress"] == f"127.0.0.1:{server.port}"
            assert result["timings"]["tls"] > 0 and result["timings"]["total"] > 0
            assert result["request"] == {"bytes": 6, "excerpt": "PING\\r\\n", "fromSecret": False}
            assert result["response"]["excerpt"] == "hello\\r\\n"
            assert [a["passed"] for a in result["assertions"]] == [True]
            assert result["tls"]["verified"] is True
            assert result["tls"]["certificate"]["dnsNames"] == ["localhost"]
        last = st["lastResult"]
        assert last["location"] in ("eu", "us")
        not_after = last["tls"]["certificate"]["notAfter"]
        assert st["latency"] == f"{last['timings']['total']:.1f}ms"

        wide = control_plane.kubectl(
            "get", "tcpm", "payments-db", "-n", namespace, "-o", "wide", check=True
        ).stdout
        header, row = wide.splitlines()[:2]
        assert "CERTIFICATE EXPIRY" in header and not_after in row, wide
        assert " Up " in row and "ms " in row, wide

        described = control_plane.kubectl(
            "describe", "tcpm", "payments-db", "-n", namespace, check=True
        ).stdout
        assert "Last Result:" in described and "Not After:" in described, described
        out = os.environ.get("TCPMONITOR_DESCRIBE_OUT")
        if out:  # for the README's example
            Path(out).write_text(wide + "\n" + described)
    finally:
        server.stop()
