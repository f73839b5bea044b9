"""Probe timing error under hostile scrapers: 10,000 monitors, one unrelated fast target.

One runtime probes ``--monitors`` loopback targets (a listener process) and serves ``/metrics``
and ``/healthz`` exactly as ``tcpmonitor run`` does. An unrelated monitor probes its own
loopback listener every second; its true latency is well under a millisecond, so whatever it
reports above that is error caused by the process it runs in. Three phases of ``--duration``
seconds each: no scrapers, ``--scrapers`` looping scrapers, then ``--crowd`` concurrent
scrapers. The scrapers with an RSS sampler of this process, and a ``/healthz`` poller, run in two
child processes, so their CPU and their GIL are not charged to the runtime being measured.

    python bench/scrape_load.py [--monitors 10000] [--interval 30] [--duration 30]

Before/after a change to the HTTP endpoint, run it with ``PYTHONPATH`` on each checkout. A
thread drives the phases and prints each row as it is measured, then the table, then ends the
process with ``os._exit``: an endpoint that renders on the loop may leave a backlog of renders
for scrapers long gone, and would hold both the report and the shutdown hostage.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_listener import LoopbackListener
from runtime_fakes import CountingReporter, NoReferences
from tcpmonitor.api import ProbeResult, TcpMonitor, Verdict
from tcpmonitor.probe import ProbePlan, run_probe
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.http_endpoints import start_http
from tcpmonitor.telemetry.metrics import Metrics

UNRELATED_INTERVAL = 1.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the load: a child process -------------------------------------------------------------


def health(port: int, seconds: float) -> dict[str, Any]:
    """GET /healthz every 50 ms on a new connection, from a process of its own: a poller next
    to 200 scraper threads would measure its own wait for their GIL."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            latencies.append(time.monotonic() - start)
        except (OSError, http.client.HTTPException):
            latencies.append(max(10.0, time.monotonic() - start))
        time.sleep(0.05)
    return {
        "healthz_p99_ms": percentile(latencies, 0.99) * 1000,
        "healthz_max_ms": max(latencies, default=float("nan")) * 1000,
    }


def load(port: int, scrapers: int, seconds: float, watch_pid: int) -> dict[str, Any]:
    """``scrapers`` threads GET /metrics in a loop (keep-alive, 10 s timeout like Prometheus),
    one samples the RSS of ``watch_pid``; all stop at the deadline (a request in flight is
    abandoned at its timeout)."""
    deadline = time.monotonic() + seconds
    statuses: dict[str, int] = {}
    scrape_seconds: list[float] = []
    rss: list[float] = []
    lock = threading.Lock()

    def count(status: str) -> None:
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    def scrape() -> None:
        conn: http.client.HTTPConnection | None = None
        while (left := deadline - time.monotonic()) > 0:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=min(10.0, left))
            start = time.monotonic()
            try:
                conn.request("GET", "/metrics")
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                count(type(exc).__name__)
                conn.close()
                conn = None
                continue
            if response.status == 200 and not body.endswith(b"\n"):
                count("truncated")
            else:
                count(str(response.status))
            if response.status == 200:
                with lock:
                    scrape_seconds.append(time.monotonic() - start)
            else:
                time.sleep(0.05)  # a refused scraper retries, it does not spin
        if conn is not None:
            conn.close()

    def sample_rss() -> None:
        while time.monotonic() < deadline:
            rss.append(rss_mb(watch_pid))
            time.sleep(0.1)

    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(scrapers)]
    threads += [threading.Thread(target=sample_rss, daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 12)
    return {
        "statuses": statuses,
        "scrape_p50_s": percentile(scrape_seconds, 0.5),
        "rss_start_mb": rss[0] if rss else float("nan"),
        "rss_peak_mb": max(rss, default=float("nan")),
    }


# --- the measured runtime ------------------------------------------------------------------


def manifest(name: str, host: str, port: int, interval: float) -> TcpMonitor:
    return TcpMonitor.model_validate(
        {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitor",
            "metadata": {"name": name, "namespace": "bench", "generation": 1},
            "spec": {"host": host, "port": port, "interval": f"{interval:g}s", "timeout": "500ms"},
        }
    )


class UnrelatedTarget:
    """What the runtime reports for one monitor: connect and total times, probe starts."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connect_ms: list[float] = []
        self.total_ms: list[float] = []
        self.starts: list[float] = []
        self.down = 0

    def wrap(self, probe: Callable[[ProbePlan], Any]) -> Callable[[ProbePlan], Any]:
        async def recording(plan: ProbePlan) -> ProbeResult:
            mine = plan.port == self.port and plan.host == self.host
            if mine:
                self.starts.append(time.monotonic())
            result: ProbeResult = await probe(plan)
            if mine:
                self.connect_ms.append(result.timings.connect or float("nan"))
                self.total_ms.append(result.timings.total or float("nan"))
                self.down += result.state is Verdict.DOWN
            return result

        return recording

    def reset(self) -> None:
        self.connect_ms.clear()
        self.total_ms.clear()
        self.starts.clear()
        self.down = 0

    def figures(self) -> dict[str, float]:
        gaps = [b - a - UNRELATED_INTERVAL for a, b in itertools.pairwise(self.starts)]
        return {
            "probes": len(self.total_ms),
            "down": self.down,
            "connect_p50_ms": statistics.median(self.connect_ms) if self.connect_ms else 0.0,
            "connect_p99_ms": percentile(self.connect_ms, 0.99),
            "total_p50_ms": statistics.median(self.total_ms) if self.total_ms else 0.0,
            "total_p99_ms": percentile(self.total_ms, 0.99),
            "total_max_ms": max(self.total_ms, default=float("nan")),
            "start_late_p99_ms": percentile([max(0.0, g) for g in gaps], 0.99) * 1000,
        }


def phase(
    name: str,
    port: int,
    scrapers: int,
    seconds: float,
    unrelated: UnrelatedTarget,
    lags: list[float],
) -> dict[str, Any]:
    unrelated.reset()
    lags.clear()
    cpu0, wall0 = time.process_time(), time.monotonic()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, mode, f"{port},{scrapers},{seconds},{os.getpid()}"],
            stdout=subprocess.PIPE,
        )
        for mode in ("--load", "--health")
    ]
    outs = [child.communicate()[0] for child in children]
    cpu_share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    row: dict[str, Any] = {"phase": name, "scrapers": scrapers}
    row |= unrelated.figures()
    row["lag_p99_ms"] = percentile(list(lags), 0.99) * 1000
    row["cpu_share"] = cpu_share
    for out in outs:
        row |= json.loads(out)
    print(json.dumps(row), flush=True)
    return row


def drive(
    args: argparse.Namespace,
    port: int,
    runtime: MonitorRuntime,
    unrelated: UnrelatedTarget,
    lags: list[float],
    listeners: list[LoopbackListener],
) -> None:
    """The phases, from a thread: a loop blocked by an old endpoint cannot stall the report.
    Ends the process once the table is printed."""
    # Warm-up: every monitor's immediate first probe, then a few quiet seconds.
    for _ in range(240):
        if runtime.scheduler.stats.probes_started >= args.monitors:
            break
        time.sleep(0.5)
    time.sleep(5)
    rows = [phase("quiet", port, 0, args.duration, unrelated, lags)]
    rows.append(phase("scrapers", port, args.scrapers, args.duration, unrelated, lags))
    rows.append(phase("crowd", port, args.crowd, args.duration, unrelated, lags))
    print(table(rows), flush=True)
    for listener in listeners:
        listener.__exit__(None, None, None)
    # An old endpoint may still be rendering, on the loop, for scrapers long gone: do not
    # unwind the runtime and the server behind it.
    os._exit(0)


async def run(args: argparse.Namespace, listeners: list[LoopbackListener]) -> None:
    targets, (own, *_) = (listener.__enter__() for listener in listeners)
    unrelated = UnrelatedTarget(*own)
    lags: list[float] = []
    metrics = Metrics()
    runtime = MonitorRuntime(
        CountingReporter(),
        NoReferences(),
        metrics,
        RuntimeSettings(heartbeat=3600, max_concurrency=512),
        probe=unrelated.wrap(run_probe),
    )
    runtime.scheduler._on_lag = lags.append  # exact samples instead of histogram buckets
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    await start_http(metrics.registry, host="127.0.0.1", port=port)
    for i in range(args.monitors):
        host, tport = targets[i % len(targets)]
        await runtime.apply(manifest(f"m{i:05d}", host, tport, args.interval))
    await runtime.apply(manifest("unrelated", *own, UNRELATED_INTERVAL))
    threading.Thread(
        target=drive, args=(args, port, runtime, unrelated, lags, listeners), daemon=True
    ).start()
    await asyncio.Event().wait()


COLUMNS = [
    ("scrapers", "{}"),
    ("probes", "{}"),
    ("down", "{}"),
    ("connect_p50_ms", "{:.2f}"),
    ("connect_p99_ms", "{:.2f}"),
    ("total_p50_ms", "{:.2f}"),
    ("total_p99_ms", "{:.2f}"),
    ("total_max_ms", "{:.1f}"),
    ("start_late_p99_ms", "{:.1f}"),
    ("lag_p99_ms", "{:.1f}"),
    ("healthz_p99_ms", "{:.1f}"),
    ("healthz_max_ms", "{:.1f}"),
    ("cpu_share", "{:.2f}"),
    ("rss_start_mb", "{:.0f}"),
    ("rss_peak_mb", "{:.0f}"),
    ("scrape_p50_s", "{:.2f}"),
    ("statuses", "{}"),
]


def table(rows: list[dict[str, Any]]) -> str:
    """One line per figure, one column per phase, and the ratio of scrapers to quiet."""
    quiet, loaded = rows[0], rows[1]
    lines = [
        f"{'':18}" + "".join(f"{row['phase']:>16}" for row in rows) + f"{'scrapers/quiet':>16}"
    ]
    for name, fmt in COLUMNS:
        cells = [fmt.format(row[name]) for row in rows]
        base, value = quiet[name], loaded[name]
        ratio = f"{value / base:.1f}x" if isinstance(base, float) and base > 0 else ""
        lines.append(f"{name:18}" + "".join(f"{c:>16}" for c in cells) + f"{ratio:>16}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0, help="of the monitors, seconds")
    parser.add_argument("--duration", type=float, default=30.0, help="of each phase, seconds")
    parser.add_argument("--scrapers", type=int, default=4)
    parser.add_argument("--crowd", type=int, default=200)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--health", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        port, scrapers, seconds, pid = args.load.split(",")
        print(json.dumps(load(int(port), int(scrapers), float(seconds), int(pid))))
        return
    if args.health:
        port, _, seconds, _ = args.health.split(",")
        print(json.dumps(health(int(port), float(seconds))))
        return
    print(json.dumps({"args": vars(args)}), flush=True)
    asyncio.run(run(args, [LoopbackListener(), LoopbackListener()]))


if __name__ == "__main__":
    main()
