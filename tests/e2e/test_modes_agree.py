"""The same monitors in two namespaces at once, one per mode, must tell the same story.

Namespace A is served by an all-in-one operator, namespace B by a controller and one runner
in the location ``default``. Both hold the same three monitors (a target that is up, a closed
port, a TLS server whose CA the monitor trusts). Once they have settled, ``kubectl get tcpm -o
wide`` and ``.status`` (state, conditions type/status/reason, Event reasons) must agree, except
in what is legitimately mode-specific; that list is below and nothing else may differ.
"""

from __future__ import annotations

import json
import re
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.controlplane import Cluster

from ..unit.servers import blocking_tls_server
from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    eventually,
    get,
    reasons,
    tcpmonitor,
)
from .test_runners import Fleet

# Columns and fields that differ between the modes by design, and why.
MODE_SPECIFIC_COLUMNS = {
    "LATENCY": "timing: all-in-one shows its last probe, the controller the slowest location's",
    "LAST PROBE": "timing",
    "AGE": "timing",
    "MESSAGE": "compared without its timings below: each mode describes its own last probe",
}
MODE_SPECIFIC_CONDITIONS = {"LocationsAvailable"}  # runner deployments only
# None: a runner started with the controller has a lease duration to write its Lease before
# its location is called unavailable, so no LocationUnavailable is posted here.
MODE_SPECIFIC_EVENTS: set[str] = set()
# status.locations: written by runners only; lastSuccessTime, lastFailureTime, skippedProbes:
# written by the all-in-one from its record only (status.lastResult is written by both, and
# the Certificate Expiry column read from it is compared); message,
# latency, lastProbeTime, counters: timing or per-mode summaries. Compared: state, conditions
# (type, status, reason) and Event reasons.


@pytest.fixture
def second_namespace(kube_cluster: Cluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    kube_cluster.kubectl("create", "namespace", name, check=True)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def up_target() -> Iterator[Listener]:
    listener = Listener().start()
    yield listener
    listener.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_port(ca: trustme.CA) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with blocking_tls_server(context) as port:
        yield port


def objects(namespace: str, up: int, closed: int, tls: int, ca_pem: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ca", "namespace": namespace},
            "data": {"ca.crt": ca_pem},
        },
        tcpmonitor(namespace, "up", port=up),
        tcpmonitor(namespace, "closed", port=closed),
        tcpmonitor(
            namespace,
            "tls",
            port=tls,
            tls={
                "enabled": True,
                "serverName": "localhost",
                "caConfigMapRef": {"name": "ca", "key": "ca.crt"},
            },
        ),
    ]


EXPECTED_STATES = {"up": "Up", "closed": "Down", "tls": "Up"}


def untimed(message: str) -> str:
    return re.sub(r" \(dns [^)]*\)$", "", message)


def wide(cluster: Cluster, namespace: str) -> dict[str, dict[str, str]]:
    """``kubectl get tcpm -o wide``, each row by name, cells by column header."""
    out = cluster.kubectl("get", "tcpm", "-n", namespace, "-o", "wide", check=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    header = lines[0]
    names = [h for h in header.split("  ") if h.strip()]
    starts = [header.index(h.strip()) for h in names]
    rows = {}
    for line in lines[1:]:
        cells = [
            line[start : (starts[i + 1] if i + 1 < len(starts) else None)].strip()
            for i, start in enumerate(starts)
        ]
        row = dict(zip([n.strip() for n in names], cells, strict=True))
        rows[row["NAME"]] = row
    return rows


def story(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    st = get(cluster, namespace, name).get("status") or {}
    return {
        "state": st.get("state"),
        "conditions": sorted(
            (c["type"], c["status"], c["reason"])
            for c in st.get("conditions", [])
            if c["type"] not in MODE_SPECIFIC_CONDITIONS
        ),
        "events": [r for r in reasons(cluster, namespace, name) if r not in MODE_SPECIFIC_EVENTS],
    }


def settled(cluster: Cluster, namespace: str) -> bool:
    for name, state in EXPECTED_STATES.items():
        told = story(cluster, namespace, name)
        if told["state"] != state or not told["events"]:
            return False
        if not any(c[0] == "Reachable" and c[1] != "Unknown" for c in told["conditions"]):
            return False
    return True


def test_all_in_one_and_runner_deployment_tell_the_same_story(
    control_plane: Cluster,
    namespace: str,
    second_namespace: str,
    tmp_path: Path,
    up_target: Listener,
    tls_port: int,
    ca: trustme.CA,
) -> None:
    all_in_one_ns, distributed_ns = namespace, second_namespace
    closed = Listener().port  # bound then released by Listener's free_port: nothing listens
    ca_pem = ca.cert_pem.bytes().decode()
    operator = OperatorProcess(
        control_plane, tmp_path, "--namespace", all_in_one_ns, "--heartbeat", "30s"
    )
    fleet = Fleet(control_plane, distributed_ns, tmp_path)
    try:
        fleet.controller("controller-b")
        fleet.runner("default", "runner-b")
        apply(control_plane, *objects(all_in_one_ns, up_target.port, closed, tls_port, ca_pem))
        apply(control_plane, *objects(distributed_ns, up_target.port, closed, tls_port, ca_pem))
        for ns in (all_in_one_ns, distributed_ns):
            eventually(
                lambda n=ns: settled(control_plane, n),
                40,
                0.5,
                message=f"{ns}: every monitor reported with conditions and an Event",
            )

        one = {name: story(control_plane, all_in_one_ns, name) for name in EXPECTED_STATES}
        distributed = {name: story(control_plane, distributed_ns, name) for name in EXPECTED_STATES}
        assert one == distributed, json.dumps({"all-in-one": one, "distributed": distributed})
        reachable = {
            name: next(c for c in told["conditions"] if c[0] == "Reachable")
            for name, told in one.items()
        }
        assert reachable["closed"] == ("Reachable", "False", "ConnectionRefused")
        assert one["closed"]["events"] == ["TargetDown"]
        assert one["up"]["events"] == one["tls"]["events"] == ["TargetUp"]

        columns_one = wide(control_plane, all_in_one_ns)
        columns_distributed = wide(control_plane, distributed_ns)
        assert set(columns_one) == set(columns_distributed) == set(EXPECTED_STATES)
        for name, state in EXPECTED_STATES.items():
            a, b = columns_one[name], columns_distributed[name]
            assert set(a) == set(b)
            shared = {k: a[k] for k in a if k not in MODE_SPECIFIC_COLUMNS}
            assert shared == {k: b[k] for k in b if k not in MODE_SPECIFIC_COLUMNS}, (a, b)
            assert a["STATE"] == state
            # One location: the controller describes the deciding result as the all-in-one
            # describes its own, "127.0.0.1:PORT Up (dns -, connect 0.2ms, ...)".
            assert untimed(a["MESSAGE"]) == untimed(b["MESSAGE"]), (a, b)
    finally:
        operator.stop()
        fleet.stop()
