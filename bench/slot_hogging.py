"""Slot hogging: how late a good monitor's probes come while another namespace hogs slots.

N monitors in namespace "hostile" probe a loopback blackhole (accepts, never answers) with a
Contains assertion and a 30 s timeout, so each probe holds a slot for 30 s; one bystander in
namespace "good" probes an accept-and-close listener every second. Prints the bystander's
lateness at p50, p99 and max: the wait for its first probe (due at once), each later gap
between probe starts minus the interval, and the gap still open at the end; with the
runtime's defaults (--max-concurrency 256).

    PYTHONPATH=operator python bench/slot_hogging.py [--hogs 512] [--duration 40]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import selectors
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

from runtime_fakes import CountingReporter, NoReferences
from tcpmonitor.api import ProbeResult, TcpMonitor
from tcpmonitor.probe import ProbePlan, run_probe
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.metrics import Metrics

INTERVAL = 1.0


def _serve(ready: Connection) -> None:
    """Two listeners: a blackhole (hold every connection until the peer closes) and an
    accept-and-close target for the bystander. Own process, so its CPU is not the prober's."""
    selector = selectors.DefaultSelector()
    hole = socket.create_server(("127.0.0.1", 0), backlog=4096)
    good = socket.create_server(("127.0.0.1", 0), backlog=4096)
    for listener in (hole, good):
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
    ready.send((hole.getsockname()[1], good.getsockname()[1]))
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is hole or sock is good:
                try:
                    conn, _addr = sock.accept()
                except BlockingIOError:
                    continue
                if sock is good:
                    conn.close()
                else:
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()


def monitor(name: str, namespace: str, spec: dict[str, Any]) -> TcpMonitor:
    return TcpMonitor.model_validate(
        {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitor",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": spec,
        }
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(hogs: int, duration: float, hole_port: int, good_port: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def probe(plan: ProbePlan) -> ProbeResult:
        if plan.port == good_port:
            starts.append(loop.time())
        return await run_probe(plan)

    runtime = MonitorRuntime(
        CountingReporter(), NoReferences(), Metrics(), RuntimeSettings(), probe=probe
    )
    begin = loop.time()
    for i in range(hogs):
        spec = {
            "host": "127.0.0.1",
            "port": hole_port,
            "interval": "30s",
            "timeout": "30s",
            "assertions": [{"source": "ResponseData", "comparison": "Contains", "target": "x"}],
        }
        await runtime.apply(monitor(f"hog-{i:04d}", "hostile", spec))
    good = {"host": "127.0.0.1", "port": good_port, "interval": "1s", "timeout": "500ms"}
    await runtime.apply(monitor("bystander", "good", good))
    applied = loop.time()
    await asyncio.sleep(duration)
    end = loop.time()
    stats = runtime.scheduler.stats
    await runtime.close()
    # The wait for the first (immediate) probe, the gaps after it, and the gap still open at
    # the end: a bystander that is never probed is as late as the whole run.
    late = [max(0.0, starts[0] - applied)] if starts else []
    late += [max(0.0, b - a - INTERVAL) for a, b in itertools.pairwise(starts[1:])]
    late.append(max(0.0, end - (starts[-1] + INTERVAL if starts else applied)))
    return {
        "hogs": hogs,
        "duration_s": duration,
        "setup_s": round(applied - begin, 3),
        "bystander_probes": len(starts),
        "bystander_expected_probes": round(duration / INTERVAL),
        "bystander_lateness_s": {
            "p50": round(percentile(late, 0.5), 3),
            "p99": round(percentile(late, 0.99), 3),
            "max": round(max(late), 3),
        },
        "probes_started": stats.probes_started,
        "slots_skipped_overlap": stats.slots_skipped,
        "probes_skipped_concurrency": getattr(stats, "probes_starved", None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hogs", type=int, default=512)
    parser.add_argument("--duration", type=float, default=40.0)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        hole_port, good_port = parent.recv()
        started = time.perf_counter()
        result = asyncio.run(run(args.hogs, args.duration, hole_port, good_port))
        result["wall_s"] = round(time.perf_counter() - started, 1)
    finally:
        server.terminate()
        server.join(timeout=5)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
