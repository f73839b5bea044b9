"""``tcpmonitor probe-now``: the annotation probes at once, in both modes, and the CLI waits.

The monitors' interval is long (10 minutes), so a result newer than the first probe can only
come from the request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.controlplane import Cluster

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    eventually,
    get,
    reasons,
    state_is,
    status,
    tcpmonitor,
)
from .test_runners import Fleet, location

ANNOTATION = "tcpmonitor.dev/requestedAt"


def probe_now(
    cluster: Cluster, namespace: str, name: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpmonitor",
            "probe-now",
            name,
            "-n",
            namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_probe_now_in_the_all_in_one_mode(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    target = Listener().start()
    operator = OperatorProcess(control_plane, tmp_path, "--namespace", namespace)
    try:
        apply(control_plane, tcpmonitor(namespace, "web", port=target.port, interval="10m"))
        first = eventually(
            lambda: state_is(control_plane, namespace, "web", "Up"), 15, message="Up"
        )
        target.stop()  # refused from now on; only a requested probe can tell

        done = probe_now(control_plane, namespace, "web", "-o", "json", "--timeout", "20s")
        assert done.returncode == 1, done.stderr
        [printed] = json.loads(done.stdout)
        assert printed["name"] == "web" and printed["state"] == "Down"
        assert printed["error"]["code"] == "CONNECTION_REFUSED"
        obj = get(control_plane, namespace, "web")
        value = obj["metadata"]["annotations"][ANNOTATION]
        st = obj["status"]
        assert st["lastHandledProbeRequest"] == value
        assert st["lastProbeTime"] > first["lastProbeTime"]
        assert obj["metadata"]["generation"] == 1  # only metadata was written
        assert st["lastResult"]["error"]["code"] == "CONNECTION_REFUSED"

        # The table, as `tcpmonitor probe` prints it.
        again = probe_now(control_plane, namespace, "web", "--timeout", "20s")
        assert again.returncode == 1, again.stderr
        assert again.stdout.startswith(f"{namespace}/web (127.0.0.1:{target.port})  Down")
        assert "CONNECTION_REFUSED" in again.stdout

        # The same value set again (a re-applied manifest) asks for nothing.
        handled = status(control_plane, namespace, "web")
        control_plane.kubectl(
            "annotate",
            "tcpmonitor",
            "web",
            "-n",
            namespace,
            f"{ANNOTATION}={handled['lastHandledProbeRequest']}",
            "--overwrite",
            check=True,
        )
        operator.stop()  # nothing more can happen now: the status must be as it was
        assert status(control_plane, namespace, "web")["lastProbeTime"] == handled["lastProbeTime"]
        assert "TargetDown" in reasons(control_plane, namespace, "web")

        # Nobody to handle it: a timeout, one line, exit 2.
        late = probe_now(control_plane, namespace, "web", "--timeout", "1s")
        assert late.returncode == 2 and late.stdout == ""
        assert "was not handled within 1s" in late.stderr and late.stderr.count("\n") == 1
        missing = probe_now(control_plane, namespace, "nobody", "--timeout", "1s")
        assert missing.returncode == 2 and "404" in missing.stderr
    finally:
        operator.stop()
        target.stop()


def test_probe_now_with_runners_waits_for_every_live_location(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    target = Listener().start()
    fleet = Fleet(control_plane, namespace, tmp_path)
    try:
        fleet.controller("controller-a")
        fleet.runner("eu", "eu-1")
        fleet.runner("us", "us-1")
        apply(
            control_plane,
            tcpmonitor(namespace, "web", port=target.port, interval="10m", locations=["eu", "us"]),
        )

        def both_up() -> dict[str, Any] | None:
            st = status(control_plane, namespace, "web")
            states = [e.get("state") for e in st.get("locations", [])]
            return st if st.get("state") == "Up" and states == ["Up", "Up"] else None

        eventually(both_up, 30, message="Up in both locations")
        target.stop()

        done = probe_now(control_plane, namespace, "web", "-o", "json", "--timeout", "30s")
        assert done.returncode == 1, done.stderr + done.stdout
        [printed] = json.loads(done.stdout)
        assert printed["state"] == "Down" and printed["location"] in ("eu", "us")
        obj = get(control_plane, namespace, "web")
        value = obj["metadata"]["annotations"][ANNOTATION]
        st = obj["status"]
        assert st["lastHandledProbeRequest"] == value
        for name in ("eu", "us"):
            entry = location(st, name)
            assert entry["lastHandledProbeRequest"] == value
            assert entry["lastResult"]["error"]["code"] == "CONNECTION_REFUSED"
        assert obj["metadata"]["generation"] == 1
    finally:
        fleet.stop()
        target.stop()
