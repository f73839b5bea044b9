"""The operator against the real control plane: apply-to-status latency and status write volume.

    python bench/operator_cluster.py apply-latency [--count 20]
    python bench/operator_cluster.py status-patches [--monitors 1000] [--minutes 2]

Both start the project's test control plane (tests/controlplane) and the operator as a real
process, exactly as the e2e tests do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402
from tests.controlplane import ControlPlane, ensure_binaries  # noqa: E402
from tests.e2e.operator_process import Listener, OperatorProcess, apply, tcpmonitor  # noqa: E402

GROUP, VERSION, PLURAL = "tcpmonitor.dev", "v1alpha1", "tcpmonitors"


def apply_latency(cluster: Any, log_dir: Path, count: int) -> dict[str, Any]:
    """kubectl apply of one monitor at a time, then poll until the status has a result."""
    target = Listener().start()
    operator = OperatorProcess(cluster, log_dir)
    custom = client.CustomObjectsApi(cluster.api_client())
    cluster.kubectl("create", "namespace", "latency", check=True)
    samples = []
    try:
        for i in range(count):
            started = time.perf_counter()
            apply(cluster, tcpmonitor("latency", f"m{i}", port=target.port, interval="60s"))
            while True:
                obj = custom.get_namespaced_custom_object(
                    GROUP, VERSION, "latency", PLURAL, f"m{i}"
                )
                if (obj.get("status") or {}).get("lastResult"):
                    break
                time.sleep(0.005)
            samples.append(time.perf_counter() - started)
    finally:
        operator.stop()
        target.stop()
    return {
        "count": count,
        "apply_to_first_result_s": {
            "median": round(statistics.median(samples), 3),
            "p90": round(sorted(samples)[int(0.9 * (count - 1))], 3),
            "max": round(max(samples), 3),
        },
        "note": "includes kubectl start-up (a process per apply) and 5 ms polling",
    }


class FlappingListener(Listener):
    """Up and down in turns, a flapping target."""

    def flap(self, period: float, stop: threading.Event) -> None:
        up = True
        while not stop.wait(period):
            (self.stop if up else self.start)()
            up = not up


def patches(operator: OperatorProcess) -> float:
    return operator.metric("tcpmonitor_status_patches_total", result="success") or 0.0


def status_patches(cluster: Any, log_dir: Path, monitors: int, minutes: float) -> dict[str, Any]:
    steady_target = Listener().start()
    flapping = FlappingListener()
    flapping.start()
    cluster.kubectl("create", "namespace", "load", check=True)
    operator = OperatorProcess(cluster, log_dir, "--heartbeat", "60s")
    result: dict[str, Any] = {"monitors": monitors, "interval": "10s", "heartbeat": "60s"}
    try:
        objs = [
            tcpmonitor("load", f"m{i:04d}", port=steady_target.port, interval="10s")
            for i in range(monitors)
        ]
        for chunk in range(0, monitors, 200):
            apply(cluster, *objs[chunk : chunk + 200])
        time.sleep(75)  # creation writes and first results settle
        before, t0 = patches(operator), time.monotonic()
        time.sleep(minutes * 60)
        steady = (patches(operator) - before) / ((time.monotonic() - t0) / 60)
        result["steady_patches_per_minute"] = round(steady, 1)
        result["steady_patches_per_monitor_per_heartbeat"] = round(steady / monitors, 3)
        # A tenth of the monitors now point at a target that goes down and up every 15 s.
        flappers = monitors // 10
        apply(
            cluster,
            *[
                tcpmonitor("load", f"m{i:04d}", port=flapping.port, interval="10s")
                for i in range(flappers)
            ],
        )
        stop = threading.Event()
        thread = threading.Thread(target=flapping.flap, args=(15, stop), daemon=True)
        thread.start()
        time.sleep(20)
        before, t0 = patches(operator), time.monotonic()
        time.sleep(minutes * 60)
        flapping_rate = (patches(operator) - before) / ((time.monotonic() - t0) / 60)
        stop.set()
        result["flapping_monitors"] = flappers
        result["flapping_patches_per_minute"] = round(flapping_rate, 1)
        result["errors"] = operator.metric("tcpmonitor_status_patches_total", result="error") or 0
    finally:
        operator.stop()
        steady_target.stop()
        flapping.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    latency = sub.add_parser("apply-latency")
    latency.add_argument("--count", type=int, default=20)
    load = sub.add_parser("status-patches")
    load.add_argument("--monitors", type=int, default=1000)
    load.add_argument("--minutes", type=float, default=2)
    args = parser.parse_args()
    with ControlPlane(ensure_binaries()) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.install_crds()
        cluster.allow_loopback_targets()
        if args.what == "apply-latency":
            out = apply_latency(cluster, Path(tmp), args.count)
        else:
            out = status_patches(cluster, Path(tmp), args.monitors, args.minutes)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
