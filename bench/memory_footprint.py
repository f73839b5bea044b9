"""Memory per monitor of the runtime alone: RSS at 10,000 and 50,000 monitors, and where it goes.

Each count runs in a fresh process (so one count's heap does not inflate the next): the
monitors go through the real ``MonitorRuntime`` (spec models, compiled plans, the scheduler,
the state machine, metrics rows, a status built on every write) and probe accept-and-close
listeners on 127.0.0.1-8 in another process. After a warm-up (every monitor's first probe and
one more interval, so each holds a last result and conditions) it measures for ``--duration``
seconds: RSS (``VmRSS``) and its peak, schedule lag p50/p99, CPU share of one core. The RSS of
the process before any monitor exists (interpreter, pydantic, prometheus_client, the API
models) is reported apart, so ``bytes per monitor`` is the growth divided by the count.

``--trace`` runs the same count again under tracemalloc (started after the imports, so it
sees what the monitors cost) with an interval of an hour: every monitor's first probe, then a
snapshot with no probe running. It prints the 15 largest allocation sites (file:line), the
innermost line of our own code on each allocation's way (which of our lines keeps a pydantic
model, say), the largest files, and the traced bytes per monitor.

    python bench/memory_footprint.py --monitors 10000 50000 --interval 10 --duration 30 --trace
    python bench/memory_footprint.py --monitors 10000 --kind rich   # payload, assertions, TLS

cryptography (about 8 MB) is imported by the first probe that reads a certificate, and the
listeners here hang up before any is sent: ``--with-cryptography`` imports it before the
first monitor, as in a runner whose TLS targets answer. ``cryptography_loaded`` in the output
says whether it was loaded at the end.

kopf is not imported: the operator's own per-object state (kopf keeps each watched object's
body, its diff base in an annotation, and its handler progress) comes on top;
``bench/apiserver_load.py`` reports the RSS of the real processes on the control plane.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_listener import LoopbackListener
from runtime_fakes import CountingReporter, NoReferences
from tcpmonitor.api import MonitorState, TcpMonitor
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.metrics import Metrics

TOP = 15
TRACE_FRAMES = 30


def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def manifest(i: int, host: str, port: int, interval: float, kind: str) -> dict[str, object]:
    spec: dict[str, object] = {
        "host": host,
        "port": port,
        "interval": f"{interval:g}s",
        "timeout": "2s",
    }
    if kind == "rich":
        # What a careful user writes: a payload, assertions, TLS with a baseline. The listener
        # closes at once, so these probes end Down with the handshake's error: a result with
        # an error, phases and a message, the larger kind to keep.
        spec |= {
            "send": "PING\r\n",
            "assertions": [
                {"source": "ResponseData", "comparison": "Matches", "target": "^\\+PONG"},
                {"source": "ResponseTime", "comparison": "LessThan", "target": "500ms"},
            ],
            "tls": {"enabled": True, "serverName": f"svc-{i % 50}.bench.svc"},
            "failureThreshold": 2,
        }
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {
            "name": f"m{i:06d}",
            "namespace": f"team-{i % 20:02d}",
            "generation": 1,
            "uid": f"00000000-0000-4000-8000-{i:012d}",
        },
        "spec": spec,
    }


async def measure(
    monitors: int, interval: float, duration: float, kind: str, trace: bool, crypto: bool
) -> dict[str, object]:
    if crypto:
        # What the TLS steps import when a probe first reads a certificate.
        for module in ("certificate", "hostname", "revocation", "ocsp_responder"):
            importlib.import_module(f"tcpmonitor.probe.{module}")
    reporter = CountingReporter()
    metrics = Metrics()
    lags: list[float] = []
    settings = RuntimeSettings(heartbeat=60)  # the defaults: 256 probes at once
    runtime = MonitorRuntime(reporter, NoReferences(), metrics, settings)
    runtime.scheduler._on_lag = lags.append  # exact samples instead of histogram buckets
    rss_before, _ = rss_mb()
    if trace:
        tracemalloc.start(TRACE_FRAMES)
    with LoopbackListener() as targets:
        t0 = time.perf_counter()
        for i in range(monitors):
            host, port = targets[i % len(targets)]
            await runtime.apply(TcpMonitor.model_validate(manifest(i, host, port, interval, kind)))
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let the first probes start, as a watch would
        applied_s = time.perf_counter() - t0
        # Warm-up: every monitor's immediate first probe, then one full interval.
        if trace:
            # Under tracemalloc only the first probes, with nothing in flight when the
            # snapshot is taken: it shows what the monitors keep, not what probes hold.
            await first_probes_done(runtime, monitors)
        else:
            await asyncio.sleep(interval * 1.5)
        lags.clear()
        probes0 = runtime.scheduler.stats.probes_started
        skipped0 = runtime.scheduler.stats.slots_skipped + runtime.scheduler.stats.probes_starved
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(duration)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        probes = runtime.scheduler.stats.probes_started - probes0
        skipped = (
            runtime.scheduler.stats.slots_skipped
            + runtime.scheduler.stats.probes_starved
            - skipped0
        )
        rss, peak = rss_mb()
        snapshot = tracemalloc.take_snapshot() if trace else None
        states: dict[str, int] = {}
        for key in list(runtime._monitors):
            state = runtime.state_of(key)
            name = state.value if isinstance(state, MonitorState) else "none"
            states[name] = states.get(name, 0) + 1
        await runtime.close()
    out: dict[str, object] = {
        "monitors": monitors,
        "kind": kind,
        "interval_s": interval,
        "apply_s": round(applied_s, 1),
        "states": states,
        "cryptography_loaded": "cryptography.x509" in sys.modules,
    }
    if snapshot is not None:
        tracemalloc.stop()
        out |= where_the_bytes_go(snapshot, monitors)
        return out
    out |= {
        "measured_s": round(wall, 1),
        "probes_per_second": round(probes / wall, 1),
        "expected_probes_per_second": round(monitors / interval, 1),
        "slots_skipped": skipped,
        "lag_ms": {
            "p50": round(statistics.median(lags) * 1000, 2) if lags else None,
            "p99": round(percentile(lags, 0.99) * 1000, 2) if lags else None,
        },
        "cpu_share_of_one_core": round(cpu / wall, 3),
        "rss_before_monitors_mb": round(rss_before, 1),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak, 1),
        "bytes_per_monitor": round((rss - rss_before) * 2**20 / monitors),
    }
    return out


async def first_probes_done(runtime: MonitorRuntime, monitors: int, limit: float = 300) -> None:
    stats = runtime.scheduler.stats
    until = time.monotonic() + limit
    while time.monotonic() < until:
        await asyncio.sleep(0.2)
        if stats.probes_started >= monitors and stats.in_flight == 0:
            return


def where_the_bytes_go(snapshot: tracemalloc.Snapshot, monitors: int) -> dict[str, object]:
    """The traced bytes three ways: by allocation site (file:line), by the innermost frame in
    our own code that led there (which of our lines keeps a pydantic model, say), by file."""
    by_site: dict[str, list[int]] = {}
    by_ours: dict[str, list[int]] = {}
    by_file: dict[str, list[int]] = {}
    traced = 0
    for stat in snapshot.statistics("traceback"):
        frames = list(stat.traceback)  # oldest first
        site = frames[-1]
        ours = next((f for f in reversed(frames) if "/tcpmonitor/" in f.filename), None)
        traced += stat.size
        for table, where in (
            (by_site, f"{_short(site.filename)}:{site.lineno}"),
            (by_ours, f"{_short(ours.filename)}:{ours.lineno}" if ours else "(not ours)"),
            (by_file, _short(site.filename)),
        ):
            row = table.setdefault(where, [0, 0])
            row[0] += stat.size
            row[1] += stat.count

    def top(table: dict[str, list[int]]) -> list[dict[str, object]]:
        rows = sorted(table.items(), key=lambda item: -item[1][0])[:TOP]
        return [
            {
                "where": where,
                "mb": round(size / 2**20, 2),
                "bytes_per_monitor": round(size / monitors),
                "blocks": count,
            }
            for where, (size, count) in rows
        ]

    return {
        "traced_mb": round(traced / 2**20, 1),
        "traced_bytes_per_monitor": round(traced / monitors),
        "top_sites": top(by_site),
        "top_our_lines": top(by_ours),
        "top_files": top(by_file),
    }


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/operator/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def child(args: argparse.Namespace) -> None:
    result = asyncio.run(
        measure(
            args.monitors[0],
            args.interval,
            args.duration,
            args.kind,
            args.trace,
            args.with_cryptography,
        )
    )
    print(json.dumps(result))


def run_child(monitors: int, args: argparse.Namespace, trace: bool) -> dict[str, object]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--monitors",
        str(monitors),
        "--interval",
        # Under tracemalloc the interval is long enough that the snapshot finds no probe
        # running: only the first probes are made.
        str(args.interval if not trace else 3600),
        "--duration",
        str(args.duration if not trace else 0),
        "--kind",
        args.kind,
    ]
    command += ["--trace"] if trace else []
    command += ["--with-cryptography"] if args.with_cryptography else []
    budget = 120 + monitors / 100 + args.interval * 2 + args.duration
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=budget * (3 if trace else 1)
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--monitors", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--kind", choices=("plain", "rich"), default="plain")
    parser.add_argument("--trace", action="store_true", help="also run under tracemalloc")
    parser.add_argument(
        "--with-cryptography",
        action="store_true",
        help="import cryptography before the first monitor (see above)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for monitors in args.monitors:
        result = run_child(monitors, args, trace=False)
        print(json.dumps(result, indent=2), flush=True)
        if args.trace:
            traced = run_child(monitors, args, trace=True)
            print(
                f"\ntracemalloc, {monitors} monitors ({args.kind}): "
                f"{traced['traced_mb']} MB traced, {traced['traced_bytes_per_monitor']} B/monitor"
            )
            for title, table in (
                ("allocation site", "top_sites"),
                ("innermost line of tcpmonitor on the way", "top_our_lines"),
                ("file", "top_files"),
            ):
                print(f"\n| {title} | MB | B/monitor | blocks |\n|---|---:|---:|---:|")
                for row in traced[table]:  # type: ignore[attr-defined]
                    print(
                        f"| {row['where']} | {row['mb']} | {row['bytes_per_monitor']} "
                        f"| {row['blocks']} |"
                    )
            print(flush=True)


if __name__ == "__main__":
    main()
