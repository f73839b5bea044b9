"""CPU per probe of a protocol check next to a connect-only probe, on loopback.

Three checks against scripted servers running in their own process (so their CPU is not
charged to the prober): a TCP connect, Redis (PING, INFO server) and SMTP with STARTTLS
(greeting, EHLO, STARTTLS, TLS handshake with certificate verification, EHLO, QUIT). CPU is
the prober process's user+system time over the run divided by the probes; rounds alternate
the checks and medians are reported, since only ratios from one run mean something.

    python bench/protocol_cost.py [--probes 500] [--concurrency 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import ssl
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

import trustme

from tcpmonitor.api import TcpMonitorSpec, Verdict
from tcpmonitor.probe import ProbeMaterial, compile_plan, run_probe
from tcpmonitor.probe.plan import ProbePlan

MAX_PROBES = 20_000
# A run that takes longer than this is stopped: the numbers would be meaningless anyway.
RUN_LIMIT_SECONDS = 120.0
_INFO = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"


async def _connect_only(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        if line == b"PING\r\n":
            writer.write(b"+PONG\r\n")
        elif line == b"INFO server\r\n":
            writer.write(b"$%d\r\n%s\r\n" % (len(_INFO), _INFO))
        await writer.drain()
    writer.close()


def _smtp(context: ssl.SSLContext) -> Any:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 bench.test ESMTP\r\n")
        while line := await reader.readline():
            if line.startswith(b"EHLO"):
                writer.write(b"250-bench.test\r\n250 STARTTLS\r\n")
            elif line == b"STARTTLS\r\n":
                writer.write(b"220 Ready\r\n")
                await writer.drain()
                await writer.start_tls(context)
                continue
            elif line == b"QUIT\r\n":
                writer.write(b"221 Bye\r\n")
                await writer.drain()
                break
            await writer.drain()
        writer.close()

    return handler


def _serve(ready: Connection, cert_dir: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f"{cert_dir}/server.pem")

    async def main() -> None:
        ports = []
        for handler in (_connect_only, _redis, _smtp(context)):
            server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=1024)
            ports.append(server.sockets[0].getsockname()[1])
        ready.send(ports)
        await asyncio.sleep(RUN_LIMIT_SECONDS * 10)

    asyncio.run(main())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(plan: ProbePlan, probes: int, concurrency: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, probes that were not Up)."""
    left = probes
    failed = 0
    deadline = time.monotonic() + RUN_LIMIT_SECONDS

    async def worker() -> None:
        nonlocal left, failed
        while left > 0 and time.monotonic() < deadline:
            left -= 1
            result = await run_probe(plan)
            if result.state is not Verdict.UP:
                failed += 1

    cpu, wall = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _cpu() - cpu, time.perf_counter() - wall, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    probes = max(1, min(args.probes, MAX_PROBES))
    rounds = max(1, min(args.rounds, 10))
    concurrency = max(1, min(args.concurrency, 100))

    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as cert_dir:
        ca.issue_cert("bench.test").private_key_and_cert_chain_pem.write_to_path(
            f"{cert_dir}/server.pem"
        )
        ours, theirs = multiprocessing.Pipe()
        server = multiprocessing.Process(target=_serve, args=(theirs, cert_dir), daemon=True)
        server.start()
        try:
            if not ours.poll(30):
                print("the scripted servers did not start", file=sys.stderr)
                return 1
            connect_port, redis_port, smtp_port = ours.recv()
            material = ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode())
            base = {"host": "127.0.0.1", "timeout": "5s"}
            tls = {"enabled": True, "startTLS": True, "serverName": "bench.test"}
            checks = {
                "connect only": compile_plan(TcpMonitorSpec(**base, port=connect_port)),
                "Redis PING + INFO": compile_plan(
                    TcpMonitorSpec.model_validate({**base, "port": redis_port, "protocol": "Redis"})
                ),
                "SMTP + STARTTLS": compile_plan(
                    TcpMonitorSpec.model_validate(
                        {**base, "port": smtp_port, "protocol": "SMTP", "tls": tls}
                    ),
                    material,
                ),
            }
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in checks}
            for _ in range(rounds):
                for name, plan in checks.items():
                    cpu, wall, failed = asyncio.run(_drive(plan, probes, concurrency))
                    if failed:
                        print(f"{name}: {failed} of {probes} probes not Up", file=sys.stderr)
                        return 1
                    samples[name].append((cpu / probes, wall / probes))
        finally:
            server.kill()
            server.join(5)

    floor = statistics.median(cpu for cpu, _ in samples["connect only"])
    print(f"{probes} probes x {rounds} rounds, concurrency {concurrency}, loopback; medians")
    print(f"{'check':<20} {'CPU ms/probe':>13} {'wall ms/probe':>14} {'x connect':>10}")
    for name, values in samples.items():
        cpu = statistics.median(c for c, _ in values)
        wall = statistics.median(w for _, w in values)
        print(f"{name:<20} {cpu * 1000:>13.3f} {wall * 1000:>14.3f} {cpu / floor:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
