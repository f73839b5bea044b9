"""The target policy end to end: a TcpMonitorPolicy on the real API server, the operator as a
process, and listeners that count every connection they accept.

A metadata-like address is a listener on 169.254.77.2 inside a network namespace the test
makes, reachable from here through a veth pair (the test first connects to it itself, so that a
count of zero means "refused", not "unreachable"); the same listener on 198.18.77.2 stands for
an internal network that the test's policy allows one namespace and not the other. The
namespaces carry the label that keeps the e2e suite's allow-loopback policy away, so the
defaults and this test's own policy decide.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane import Cluster
from tests.controlplane.cluster import POLICY_TEST_LABEL

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    condition,
    events,
    eventually,
    state_is,
    status,
    tcpmonitor,
)

METADATA_HOST = "169.254.77.1"
METADATA_TARGET = "169.254.77.2"
METADATA_PORT = 8775

INTERNAL_HOST = "198.18.77.1"  # benchmarking range, here inside the test's namespace only
INTERNAL_TARGET = "198.18.77.2"
UNCOVERED_PORT = 8776

_COUNTING_SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        print("accepted %s:%d" % c.getsockname()[:2], flush=True)
        c.close()
"""


class NetnsListener:
    """A TCP listener on a link-local address inside its own network namespace."""

    def __init__(self, log: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.netns = f"tcpm-pol-{tag}"
        self.host_if, self.ns_if = f"tpol{tag}h", f"tpol{tag}n"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    def start(self) -> NetnsListener:
        self._ip("netns", "add", self.netns)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.netns)
        self._ip("addr", "add", f"{METADATA_HOST}/30", "dev", self.host_if)
        self._ip("addr", "add", f"{INTERNAL_HOST}/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        inside = ("netns", "exec", self.netns, "ip")
        self._ip(*inside, "addr", "add", f"{METADATA_TARGET}/30", "dev", self.ns_if)
        self._ip(*inside, "addr", "add", f"{INTERNAL_TARGET}/30", "dev", self.ns_if)
        self._ip(*inside, "link", "set", self.ns_if, "up")
        self._ip(*inside, "link", "set", "lo", "up")
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    *("ip", "netns", "exec", self.netns, sys.executable, "-c"),
                    *(_COUNTING_SERVER, str(METADATA_PORT), str(UNCOVERED_PORT)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        eventually(lambda: "listening" in self.log.read_text(), 10, message="netns listener")
        return self

    def accepted(self, address: str, port: int) -> int:
        return self.log.read_text().count(f"accepted {address}:{port}\n")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        subprocess.run(
            ["ip", "link", "del", self.host_if], capture_output=True, timeout=10, check=False
        )
        subprocess.run(
            ["ip", "netns", "del", self.netns], capture_output=True, timeout=10, check=False
        )


@pytest.fixture
def metadata_service(tmp_path: Path) -> Iterator[NetnsListener]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    listener = NetnsListener(tmp_path / "netns-listener.log")
    try:
        listener.start()
        yield listener
    finally:
        listener.stop()


def _namespace(cluster: Cluster, team: str) -> str:
    name = f"e2e-policy-{team}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name, check=True)
    cluster.kubectl("label", "namespace", name, f"{POLICY_TEST_LABEL}={team}", check=True)
    return name


def _policy(name: str, team: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitorPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {POLICY_TEST_LABEL: team}},
            "rules": list(rules),
        },
    }


def _forbidden(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    st = state_is(cluster, namespace, name, "Down")
    if not st or (st.get("lastResult") or {}).get("error", {}).get("code") != "TARGET_FORBIDDEN":
        return None
    return st


def test_policy_refuses_before_the_syn_and_says_why(
    control_plane: Cluster, tmp_path: Path, metadata_service: NetnsListener
) -> None:
    with socket.create_connection((METADATA_TARGET, METADATA_PORT), timeout=5):
        pass  # reachable from here: a zero count below means refused, not unreachable
    eventually(
        lambda: metadata_service.accepted(METADATA_TARGET, METADATA_PORT) == 1,
        5,
        message="the direct connection",
    )

    team_a, team_b = _namespace(control_plane, "team-a"), _namespace(control_plane, "team-b")
    echo, counting = Listener().start(), Listener().start()
    policy_name = f"e2e-team-a-{uuid.uuid4().hex[:6]}"
    allow_echo = {
        "name": "echo",
        "action": "Allow",
        "cidrs": ["127.0.0.1/32"],
        "ports": [str(echo.port)],
    }
    internal = {"name": "internal", "action": "Allow", "cidrs": [f"{INTERNAL_TARGET}/30"]}
    apply(control_plane, _policy(policy_name, "team-a", allow_echo, internal))
    operator = OperatorProcess(
        control_plane,
        tmp_path,
        "--target-default-action",
        "Deny",
        "--namespace",
        team_a,
        "--namespace",
        team_b,
    )
    try:
        spec = {"interval": "2s", "timeout": "1s"}
        apply(
            control_plane,
            tcpmonitor(team_a, "metadata", host=METADATA_TARGET, port=METADATA_PORT, **spec),
            tcpmonitor(team_a, "by-name", host="localhost", port=counting.port, **spec),
            tcpmonitor(team_a, "echo", port=echo.port, **spec),
            tcpmonitor(team_a, "internal", host=INTERNAL_TARGET, port=METADATA_PORT, **spec),
            tcpmonitor(team_b, "not-covered", host=INTERNAL_TARGET, port=UNCOVERED_PORT, **spec),
        )
        eventually(lambda: state_is(control_plane, team_a, "echo", "Up"), 20, message="echo Up")
        eventually(
            lambda: state_is(control_plane, team_a, "internal", "Up"), 20, message="internal Up"
        )
        metadata = eventually(
            lambda: _forbidden(control_plane, team_a, "metadata"), 20, message="metadata refused"
        )
        by_name = eventually(
            lambda: _forbidden(control_plane, team_a, "by-name"), 20, message="by-name refused"
        )
        uncovered = eventually(
            lambda: _forbidden(control_plane, team_b, "not-covered"), 20, message="team-b refused"
        )
        assert "refused by builtin/link-local" in metadata["lastResult"]["error"]["message"]
        assert "refused by builtin/loopback" in by_name["lastResult"]["error"]["message"]
        assert "no policy covers the namespace" in uncovered["lastResult"]["error"]["message"]
        ready = condition(metadata, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "TargetForbidden")
        assert "refused by policy" in ready["message"]
        assert condition(metadata, "Reachable")["reason"] == "TargetForbidden"
        time.sleep(4.5)  # two more intervals: still nothing reaches the listeners
        assert metadata_service.accepted(METADATA_TARGET, METADATA_PORT) == 1  # the test's own
        assert metadata_service.accepted(INTERNAL_TARGET, METADATA_PORT) >= 2  # team-a: allowed
        assert metadata_service.accepted(INTERNAL_TARGET, UNCOVERED_PORT) == 0
        assert counting.accepted == []
        warnings = [
            e
            for e in events(control_plane, team_a, "metadata")
            if e.get("type") == "Warning" and "TARGET_FORBIDDEN" in (e.get("note") or "")
        ]
        assert len(warnings) == 1, warnings

        # The policy changes: allowing the counting listener's port acts without a restart.
        allow_counting = {**allow_echo, "name": "counting", "ports": [str(counting.port)]}
        apply(control_plane, _policy(policy_name, "team-a", allow_echo, allow_counting))
        eventually(
            lambda: state_is(control_plane, team_a, "by-name", "Up"), 20, message="by-name Up"
        )
        assert counting.accepted, "localhost now reaches 127.0.0.1"
        # Still refused: team-b is covered by no policy, and link-local stays built-in.
        assert _forbidden(control_plane, team_b, "not-covered")
        assert status(control_plane, team_a, "metadata")["state"] == "Down"
        assert metadata_service.accepted(METADATA_TARGET, METADATA_PORT) == 1
        assert metadata_service.accepted(INTERNAL_TARGET, UNCOVERED_PORT) == 0
    finally:
        operator.stop()
        echo.stop()
        counting.stop()
        control_plane.kubectl("delete", "tcpmonitorpolicy", policy_name, "--ignore-not-found")
        for ns in (team_a, team_b):
            control_plane.kubectl("delete", "namespace", ns, "--wait=false")
