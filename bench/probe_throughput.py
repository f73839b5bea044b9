"""Connect-only probes per second and CPU per 1,000 probes: the engine against the floor.

The floor is a bare ``asyncio.open_connection`` + close loop: nothing a prober can do is
cheaper in asyncio. Runs alternate (floor, engine, floor, engine, ...) and medians are reported,
because these machines are noisy and only ratios from one run mean something.

    python bench/probe_throughput.py [--probes 20000] [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"floor": [], "engine": []}
    with LoopbackListener() as targets:
        contenders = {"floor": floor_once, "engine": engine_probe(targets)}
        for _ in range(args.rounds):
            for name, once in contenders.items():
                runs[name].append(asyncio.run(drive(once, targets, args.probes, args.concurrency)))
    summary = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    summary["ratio"] = {
        "throughput_engine_over_floor": summary["engine"]["probes_per_second"]
        / summary["floor"]["probes_per_second"],
        "cpu_engine_over_floor": summary["engine"]["cpu_seconds_per_1000"]
        / summary["floor"]["cpu_seconds_per_1000"],
    }
    print(json.dumps({"args": vars(args), **summary}, indent=2))


if __name__ == "__main__":
    main()
