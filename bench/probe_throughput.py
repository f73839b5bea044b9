"""Connect-only probes per second and CPU per 1,000 probes: the engine, the floor, the peers.

The floor is a bare ``asyncio.open_connection`` + close loop: nothing a prober can do is
cheaper in asyncio. Runs alternate (floor, engine, floor, engine, ...) and medians are reported,
because these machines are noisy and only ratios from one run mean something.

Peers, when installed, are measured in the same run: the blackbox exporter's ``tcp_connect``
module driven over its HTTP ``/probe`` API (its own CPU is counted, the HTTP client's is not;
see blackbox_peer.py), and ``check_tcp``, one process per probe as Nagios-style schedulers run
it (the children's CPU is counted). The TLS comparison is bench/tls_cost.py, the whole
exporter + Prometheus setup at 10,000 targets bench/blackbox_vs_runner.py.

    apt-get install -y --no-install-recommends prometheus-blackbox-exporter monitoring-plugins-basic
    python bench/probe_throughput.py [--probes 20000] [--concurrency 50] [--rounds 3] [--no-peers]

Measured 2026-12-01 (2 shared CPUs, load average 4-7; short variant ``--probes 4000 --rounds
1``, check_tcp not installed): engine / floor 0.93x the throughput at 1.08x the CPU; engine /
blackbox exporter 8.1x the throughput at 0.18x the CPU per probe.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from blackbox_peer import BLACKBOX, drive_exporter, exporter, installed
from loopback_listener import LoopbackListener
from tcpmonitor.api import TcpMonitorSpec, Verdict
from tcpmonitor.probe import compile_plan, run_probe

Target = tuple[str, int]


async def floor_once(target: Target) -> bool:
    _, writer = await asyncio.open_connection(*target)
    writer.close()
    await writer.wait_closed()
    return True


def engine_probe(targets: list[Target]) -> Callable[[Target], Awaitable[bool]]:
    plans = {t: compile_plan(TcpMonitorSpec(host=t[0], port=t[1], timeout="5s")) for t in targets}

    async def once(target: Target) -> bool:
        result = await run_probe(plans[target])
        return result.state is Verdict.UP

    return once


async def drive(
    once: Callable[[Target], Awaitable[bool]], targets: list[Target], probes: int, concurrency: int
) -> dict[str, float]:
    cycle = itertools.cycle(targets)
    remaining = probes
    ok = 0

    async def worker() -> None:
        nonlocal remaining, ok
        while remaining > 0:
            remaining -= 1
            if await once(next(cycle)):
                ok += 1

    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "probes_per_second": probes / wall,
        "cpu_seconds_per_1000": cpu / probes * 1000,
        "success_ratio": ok / probes,
    }


CHECK_TCP = "/usr/lib/nagios/plugins/check_tcp"
BLACKBOX_CONFIG = "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n"


def blackbox_run(targets: list[Target], probes: int, concurrency: int) -> dict[str, float]:
    with exporter(BLACKBOX_CONFIG) as (pid, port):
        return asyncio.run(drive_exporter(port, pid, "tcp_connect", targets, probes, concurrency))


def check_tcp_run(targets: list[Target], probes: int, parallel: int) -> dict[str, float]:
    cycle = itertools.cycle(targets)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    ok = 0
    running: list[subprocess.Popen[bytes]] = []
    for _ in range(probes):
        host, port = next(cycle)
        running.append(
            subprocess.Popen(
                [CHECK_TCP, "-H", host, "-p", str(port), "-t", "5"], stdout=subprocess.DEVNULL
            )
        )
        if len(running) >= parallel:
            ok += running.pop(0).wait() == 0
    ok += sum(p.wait() == 0 for p in running)
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "probes_per_second": probes / wall,
        "cpu_seconds_per_1000": cpu / probes * 1000,
        "success_ratio": ok / probes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="only the engine and the floor")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"floor": [], "engine": []}
    if not args.no_peers and installed(BLACKBOX):
        runs["blackbox_exporter"] = []
    if not args.no_peers and installed(CHECK_TCP):
        runs["check_tcp"] = []
    with LoopbackListener() as targets:
        contenders = {"floor": floor_once, "engine": engine_probe(targets)}
        for _ in range(args.rounds):
            for name, once in contenders.items():
                runs[name].append(asyncio.run(drive(once, targets, args.probes, args.concurrency)))
            if "blackbox_exporter" in runs:
                runs["blackbox_exporter"].append(
                    blackbox_run(targets, args.probes // 4, args.concurrency)
                )
            if "check_tcp" in runs:
                # One process per probe is slow: a smaller sample, the same measures.
                runs["check_tcp"].append(check_tcp_run(targets, args.probes // 20, 8))
    summary = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    engine = summary["engine"]
    others = {name: s for name, s in summary.items() if name != "engine"}
    summary["ratio"] = {
        f"throughput_engine_over_{name}": engine["probes_per_second"] / s["probes_per_second"]
        for name, s in others.items()
    } | {
        f"cpu_engine_over_{name}": engine["cpu_seconds_per_1000"] / s["cpu_seconds_per_1000"]
        for name, s in others.items()
    }
    print(json.dumps({"args": vars(args), **summary}, indent=2))


if __name__ == "__main__":
    main()
