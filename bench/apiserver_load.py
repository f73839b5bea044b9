"""The API server's side of N monitors, in both modes: writes and bytes per minute, as the API
server itself counts them.

Each mode gets a fresh control plane (tests/controlplane) so that its counters start clean:
``all-in-one`` runs one operator; ``distributed`` a controller and ``--runners`` runners of
one location. N monitors at ``--interval`` probe a loopback listener (a TcpMonitorPolicy allows
loopback, as in the e2e tests); after ``--settle`` seconds (creation writes drain, one heartbeat
passes) the API server's /metrics are read before and after ``--window`` seconds:

- ``apiserver_request_total`` by resource, subresource and verb: status writes (PATCH for the
  operator and controller, APPLY for the runners), Events, Leases, reads;
- ``apiserver_response_sizes``: the bytes the API server answered them with (a status write
  is answered with the whole object);
- ``apiserver_watch_events_sizes``: the bytes it sent to watchers (every write of a
  TcpMonitor goes to every process that watches them: operator, or controller and runners);
- the processes' own ``tcpmonitor_status_patch_bytes_total`` (request bodies) and RSS.

    python bench/apiserver_load.py --monitors 2000 --interval 10 --settle 90 --window 180
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402
from tests.controlplane import ControlPlane, ensure_binaries  # noqa: E402
from tests.e2e.operator_process import Listener, OperatorProcess, tcpmonitor  # noqa: E402

NS = "bench"
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE"}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([^ ]+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = list[tuple[str, dict[str, str], float]]


def apiserver_metrics(cluster: Any) -> Samples:
    text = cluster.kubectl("get", "--raw", "/metrics", check=True, timeout=60).stdout
    samples: Samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
        except ValueError:
            continue
    return samples


def total(samples: Samples, name: str, **want: str | set[str]) -> float:
    def matches(labels: dict[str, str]) -> bool:
        for key, value in want.items():
            have = labels.get(key, "")
            if have not in value if isinstance(value, set) else have != value:
                return False
        return True

    return sum(v for n, labels, v in samples if n == name and matches(labels))


def by_request(before: Samples, after: Samples, minutes: float) -> Iterator[dict[str, Any]]:
    """Requests per minute by resource, subresource and verb (only those that moved)."""
    keys: dict[tuple[str, str, str], float] = {}
    for sign, samples in ((-1, before), (1, after)):
        for name, labels, value in samples:
            if name == "apiserver_request_total":
                key = (labels.get("resource", ""), labels.get("subresource", ""), labels["verb"])
                keys[key] = keys.get(key, 0.0) + sign * value
    for (resource, subresource, verb), delta in sorted(keys.items(), key=lambda kv: -kv[1]):
        if delta > 0:
            yield {
                "resource": resource + (f"/{subresource}" if subresource else ""),
                "verb": verb,
                "per_minute": round(delta / minutes, 1),
            }


def status_bytes(process: OperatorProcess) -> float:
    return process.metric_value("tcpmonitor_status_patch_bytes_total") or 0.0


def rss_mb(process: OperatorProcess) -> float:
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    line = next(row for row in status.splitlines() if row.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def start_processes(cluster: Any, tmp: Path, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    common = ["--namespace", NS, "--heartbeat", f"{args.heartbeat:g}s", "--log-level", "warning"]
    if mode == "all-in-one":
        return {"operator": OperatorProcess(cluster, tmp, *common)}
    lease = ["--lease-namespace", NS, "--lease-duration", "15s"]
    processes = {
        "controller": OperatorProcess(
            cluster,
            tmp,
            "--mode",
            "controller",
            "--leader-election",
            "--identity",
            "c",
            *common,
            *lease,
        )
    }
    for i in range(args.runners):
        processes[f"runner-{i + 1}"] = OperatorProcess(
            cluster,
            tmp,
            "--location",
            "default",
            "--identity",
            f"r{i + 1}",
            *common,
            *lease,
            *(["--write-budget", f"{args.write_budget:g}"] if args.write_budget else []),
            command="runner",
        )
    return processes


def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"mode": mode, "monitors": args.monitors}
    target = Listener().start()
    with ControlPlane(ensure_binaries()) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.install_crds()
        cluster.allow_loopback_targets()
        cluster.kubectl("create", "namespace", NS, check=True)
        processes = start_processes(cluster, Path(tmp), mode, args)
        try:
            custom = client.CustomObjectsApi(cluster.api_client())
            started = time.monotonic()

            def create(i: int) -> None:
                custom.create_namespaced_custom_object(
                    "tcpmonitor.dev",
                    "v1alpha1",
                    NS,
                    "tcpmonitors",
                    tcpmonitor(
                        NS,
                        f"m{i:05d}",
                        port=target.port,
                        interval=f"{args.interval:g}s",
                        timeout="5s",
                    ),
                )

            # The API directly, a few at a time: kubectl apply of thousands is minutes.
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(create, range(args.monitors)))
            result["create_seconds"] = round(time.monotonic() - started, 1)
            time.sleep(args.settle)
            before, b0, t0 = apiserver_metrics(cluster), {}, time.monotonic()
            b0 = {name: status_bytes(p) for name, p in processes.items()}
            time.sleep(args.window)
            after = apiserver_metrics(cluster)
            minutes = (time.monotonic() - t0) / 60
            b1 = {name: status_bytes(p) for name, p in processes.items()}

            def delta(name: str, **labels: str | set[str]) -> float:
                return total(after, name, **labels) - total(before, name, **labels)

            status_writes = delta(
                "apiserver_request_total", resource="tcpmonitors", subresource="status"
            )
            all_writes = delta("apiserver_request_total", verb=WRITE_VERBS)
            result |= {
                "window_s": round(minutes * 60),
                "status_writes_per_minute": round(status_writes / minutes, 1),
                "status_writes_per_monitor_per_minute": round(
                    status_writes / minutes / args.monitors, 3
                ),
                "all_writes_per_minute": round(all_writes / minutes, 1),
                "status_request_bytes_per_minute": round(sum(b1.values()) - sum(b0.values()))
                / minutes,
                "status_response_bytes_per_minute": round(
                    delta(
                        "apiserver_response_sizes_sum",
                        resource="tcpmonitors",
                        subresource="status",
                    )
                    / minutes
                ),
                "watch_events_per_minute": round(
                    delta("apiserver_watch_events_total", resource="tcpmonitors") / minutes, 1
                ),
                "watch_bytes_per_minute": round(
                    delta("apiserver_watch_events_sizes_sum", resource="tcpmonitors") / minutes
                ),
                "requests": list(by_request(before, after, minutes))[:12],
                "rss_mb": {name: round(rss_mb(p), 1) for name, p in processes.items()},
            }
            result["status_request_bytes_per_minute"] = round(
                result["status_request_bytes_per_minute"]
            )
            result["bytes_per_status_write"] = round(
                result["status_request_bytes_per_minute"]
                / max(1.0, result["status_writes_per_minute"])
            )
            sample = custom.get_namespaced_custom_object(
                "tcpmonitor.dev", "v1alpha1", NS, "tcpmonitors", "m00000"
            )
            result["object_bytes"] = len(json.dumps(sample, separators=(",", ":")))
            states: dict[str, int] = {}
            listed = custom.list_namespaced_custom_object(
                "tcpmonitor.dev", "v1alpha1", NS, "tcpmonitors"
            )
            for item in listed["items"]:
                state = (item.get("status") or {}).get("state") or "none"
                states[state] = states.get(state, 0) + 1
            result["states"] = states
        finally:
            for process in processes.values():
                process.stop()
            target.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--monitors", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--heartbeat", type=float, default=60)
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--write-budget", type=float, default=0, help="runner's; 0: its default")
    parser.add_argument("--settle", type=float, default=90, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=180, help="seconds measured")
    parser.add_argument("--mode", choices=("all-in-one", "distributed", "both"), default="both")
    args = parser.parse_args()
    modes = ("all-in-one", "distributed") if args.mode == "both" else (args.mode,)
    for mode in modes:
        print(json.dumps(measure(mode, args), indent=2), flush=True)


if __name__ == "__main__":
    main()
