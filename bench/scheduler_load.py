"""The standalone runtime under load: 10,000 monitors at a 10 s interval on loopback targets.

Measures what the issue asks: schedule lag p50/p99 (slot to probe start, every probe), the CPU
share of the prober process, and its RSS. The targets are accept-and-close listeners in a
separate process on 127.0.0.1-8, so their CPU is not charged to the prober.

    python bench/scheduler_load.py [--monitors 10000] [--interval 10] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_listener import LoopbackListener
from runtime_fakes import CountingReporter, NoReferences
from tcpmonitor.api import MonitorState, TcpMonitor
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.metrics import Metrics


def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(
    monitors: int, interval: float, duration: float, targets: list[tuple[str, int]]
) -> dict[str, object]:
    reporter = CountingReporter()
    metrics = Metrics()
    lags: list[float] = []
    settings = RuntimeSettings(heartbeat=60, max_concurrency=512)
    runtime = MonitorRuntime(reporter, NoReferences(), metrics, settings)
    runtime.scheduler._on_lag = lags.append  # exact samples instead of histogram buckets
    for i in range(monitors):
        host, port = targets[i % len(targets)]
        await runtime.apply(
            TcpMonitor.model_validate(
                {
                    "apiVersion": "tcpmonitor.dev/v1alpha1",
                    "kind": "TcpMonitor",
                    "metadata": {"name": f"m{i:05d}", "namespace": "bench", "generation": 1},
                    "spec": {
                        "host": host,
                        "port": port,
                        "interval": f"{interval:g}s",
                        "timeout": "2s",
                    },
                }
            )
        )
    # Warm-up: the immediate first probes of every monitor, then one full interval.
    await asyncio.sleep(interval * 1.5)
    lags.clear()
    probes0 = runtime.scheduler.stats.probes_started
    skipped0 = runtime.scheduler.stats.slots_skipped
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(duration)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    probes = runtime.scheduler.stats.probes_started - probes0
    up = sum(
        1 for i in range(monitors) if runtime.state_of(("bench", f"m{i:05d}")) is MonitorState.UP
    )
    rss, peak = rss_mb()
    await runtime.close()
    return {
        "monitors": monitors,
        "interval_s": interval,
        "measured_s": round(wall, 1),
        "probes": probes,
        "probes_per_second": round(probes / wall, 1),
        "expected_probes_per_second": round(monitors / interval, 1),
        "slots_skipped": runtime.scheduler.stats.slots_skipped - skipped0,
        "monitors_up": up,
        "lag_ms": {
            "p50": round(statistics.median(lags) * 1000, 2),
            "p99": round(percentile(lags, 0.99) * 1000, 2),
            "max": round(max(lags) * 1000, 2),
        },
        "cpu_share_of_one_core": round(cpu / wall, 3),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak, 1),
        "status_writes": reporter.writes,
        "max_rss_kb_getrusage": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    with LoopbackListener() as targets:
        result = asyncio.run(run(args.monitors, args.interval, args.duration, targets))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
