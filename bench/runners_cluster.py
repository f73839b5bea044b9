"""Runners at scale on the real control plane: 5,000 monitors at 30 s across 3 runners.

Measures what issue 6 asks, in one run: status writes per minute in steady state (and the bytes
they send, the sum of the request bodies), the time
until a SIGKILLed runner's monitors are probed again, the fraction of monitors that move when a
fourth runner joins, duplicate probes in steady state, and RSS per runner. Ownership and probe
counts are read from the runners' own /metrics (a runner exports series only for the monitors
it owns, and removes them when it lets one go).

    python bench/runners_cluster.py [--monitors 5000] [--interval 30] [--lease 15]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402
from tests.controlplane import ControlPlane, ensure_binaries  # noqa: E402
from tests.e2e.operator_process import Listener, OperatorProcess, tcpmonitor  # noqa: E402

NS = "bench"


def owned(runner: OperatorProcess) -> set[str]:
    return {
        dict(labels)["name"]
        for labels in runner.series("tcpmonitor_probe_success")
        if dict(labels).get("namespace") == NS
    }


def probe_counts(runner: OperatorProcess) -> dict[str, float]:
    counts: dict[str, float] = {}
    for labels, value in runner.series("tcpmonitor_probes_total").items():
        d = dict(labels)
        if d.get("namespace") == NS:
            counts[d["name"]] = counts.get(d["name"], 0.0) + value
    return counts


def writes(process: OperatorProcess) -> float:
    return process.metric("tcpmonitor_status_patches_total", result="success") or 0.0


def bytes_written(process: OperatorProcess) -> float:
    name = "tcpmonitor_status_patch_bytes_total "  # no labels
    lines = process.metrics().splitlines()
    return next((float(row[len(name) :]) for row in lines if row.startswith(name)), 0.0)


def rss_mb(process: OperatorProcess) -> float:
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    line = next(row for row in status.splitlines() if row.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--lease", type=float, default=15)
    parser.add_argument("--settle", type=float, default=240, help="seconds before measuring")
    parser.add_argument(
        "--window",
        type=float,
        default=60,
        help="seconds measured; 300 spans the controller's heartbeat (five runner heartbeats)",
    )
    args = parser.parse_args()
    result: dict[str, Any] = vars(args).copy()
    target = Listener().start()
    with ControlPlane(ensure_binaries()) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.install_crds()
        cluster.kubectl("create", "namespace", NS, check=True)
        common = [
            "--namespace",
            NS,
            "--lease-namespace",
            NS,
            "--lease-duration",
            f"{args.lease:g}s",
            "--heartbeat",
            "60s",
            "--log-level",
            "warning",
        ]
        controller = OperatorProcess(
            cluster,
            Path(tmp),
            "--mode",
            "controller",
            "--leader-election",
            "--identity",
            "controller",
            *common,
        )
        runners = {
            name: OperatorProcess(
                cluster,
                Path(tmp),
                "--location",
                "default",
                "--identity",
                name,
                *common,
                command="runner",
            )
            for name in ("r1", "r2", "r3")
        }
        try:
            objs = [
                tcpmonitor(
                    NS, f"m{i:05d}", port=target.port, interval=f"{args.interval:g}s", timeout="5s"
                )
                for i in range(args.monitors)
            ]
            started = time.monotonic()
            custom = client.CustomObjectsApi(cluster.api_client())
            for obj in objs:  # the API directly: kubectl apply of thousands is minutes
                custom.create_namespaced_custom_object(
                    "tcpmonitor.dev", "v1alpha1", NS, "tcpmonitors", obj
                )
            result["apply_seconds"] = round(time.monotonic() - started, 1)
            # Settle: the creation writes (two per monitor and location, within the runners'
            # write budget) drain, then a full heartbeat passes.
            time.sleep(args.settle)

            window = args.window
            c_w0 = writes(controller)
            w0 = sum(writes(r) for r in runners.values()) + writes(controller)
            b0 = sum(bytes_written(r) for r in [*runners.values(), controller])
            c0 = {n: probe_counts(r) for n, r in runners.items()}
            time.sleep(window)
            w1 = sum(writes(r) for r in runners.values()) + writes(controller)
            c_w1 = writes(controller)
            b1 = sum(bytes_written(r) for r in [*runners.values(), controller])
            c1 = {n: probe_counts(r) for n, r in runners.items()}
            result["steady_status_writes_per_minute"] = round((w1 - w0) * 60 / window, 1)
            result["controller_writes_per_minute"] = round((c_w1 - c_w0) * 60 / window, 1)
            result["status_writes_per_monitor_per_minute"] = round(
                (w1 - w0) * 60 / window / args.monitors, 3
            )
            # The sum of the status request bodies: what a write costs, not only how many.
            result["status_bytes_written_per_minute"] = round((b1 - b0) * 60 / window)
            result["status_bytes_per_write"] = round((b1 - b0) / max(1.0, w1 - w0))
            probed_by: dict[str, int] = {}
            for name, counts in c1.items():
                for monitor, value in counts.items():
                    if value > c0[name].get(monitor, 0.0):
                        probed_by[monitor] = probed_by.get(monitor, 0) + 1
            result["duplicate_probes_monitors"] = sum(1 for v in probed_by.values() if v > 1)
            result["monitors_probed_in_window"] = len(probed_by)
            result["rss_mb_per_runner"] = {n: round(rss_mb(r), 1) for n, r in runners.items()}
            result["rss_mb_controller"] = round(rss_mb(controller), 1)

            shares = {n: owned(r) for n, r in runners.items()}
            result["share_per_runner"] = {n: len(s) for n, s in shares.items()}
            victims = shares["r3"]
            killed = time.monotonic()
            runners["r3"].stop(signal.SIGKILL)
            survivors = [runners["r1"], runners["r2"]]
            before = {n: probe_counts(runners[n]) for n in ("r1", "r2")}
            deadline = killed + args.lease + args.interval * 3
            while time.monotonic() < deadline:
                now_counts = [probe_counts(r) for r in survivors]
                reprobed = {
                    m
                    for m in victims
                    if any(
                        c.get(m, 0.0) > before[n].get(m, 0.0)
                        for n, c in zip(("r1", "r2"), now_counts, strict=True)
                    )
                }
                if reprobed >= victims:
                    break
                time.sleep(0.5)
            result["reassignment_seconds_after_sigkill"] = round(time.monotonic() - killed, 1)
            result["reassignment_goal_seconds"] = args.lease + args.interval

            time.sleep(args.interval)
            before_owners = {m: n for n in ("r1", "r2") for m in owned(runners[n])}
            runners["r4"] = OperatorProcess(
                cluster,
                Path(tmp),
                "--location",
                "default",
                "--identity",
                "r4",
                *common,
                command="runner",
            )
            time.sleep(args.lease / 2 + 10)
            after_owners = {m: n for n in ("r1", "r2", "r4") for m in owned(runners[n])}
            moved = [m for m, n in before_owners.items() if after_owners.get(m) != n]
            result["moved_fraction_on_scale_up"] = round(len(moved) / len(before_owners), 3)
            result["moved_goal"] = round(1 / 3, 3)
        finally:
            for process in [controller, *runners.values()]:
                process.stop()
            target.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
