"""CPU per TLS probe: the engine next to the blackbox exporter, against the same TLS listener.

One loopback listener (Python asyncio + ssl, in processes of their own sharing the ports with
SO_REUSEPORT, so their handshake CPU is charged to nobody measured) serves TLS on one port and
plain TCP on another, with a certificate for ``bench.test`` from a CA the bench makes. Both
probers verify the chain against that CA and the name, with a full handshake per probe (no
session resumption on either side):

- the engine: the default TLS monitor (``tls: {enabled: true, serverName: bench.test}``: full
  handshake, chain capture, certificate inspection, expiry, hostname), run in a child process
  of its own whose CPU time (``time.process_time``) over the probes is divided by the probes;
- the exporter: ``/probe?module=tcp_tls`` (``prober: tcp``, ``tls: true``, ``tls_config:
  {ca_file, server_name}``) driven by an aiohttp client in the bench process; the exporter
  process's utime+stime (/proc/PID/stat) over the probes divided by the probes. The client's
  CPU is not in that figure; the exporter's HTTP handling is, since it is how the exporter is
  used. The connect-only variants (our plain monitor, the exporter's ``tcp_connect``) run in
  the same rounds, so the TLS increment (TLS minus connect) is reported for each as well.

Rounds alternate the four contenders and medians are reported: only ratios from one run mean
something on a shared machine. Needs the Debian package (never its systemd unit: the bench
starts the binary on a loopback port itself):

    apt-get install -y --no-install-recommends prometheus-blackbox-exporter
    python bench/tls_cost.py [--probes 1000] [--concurrency 10] [--rounds 3] [--rsa]

Measured 2026-12-02 (2 CPUs shared with other jobs' benchmarks; ECDSA P-256, TLS 1.3; Python
3.11 with OpenSSL 3.0; blackbox_exporter 0.23.0), ``python bench/tls_cost.py`` twice and
``--rsa`` twice (1000 probes x 3 rounds, concurrency 10), CPU ms per probe, medians. "engine TLS
transport" is the same engine with ``direct_tls=False``: the handshake through asyncio's TLS
transport, as before probe/tls_socket.py, in the same run:

    contender              ECDSA run 1   ECDSA run 2   RSA run 1   RSA run 2
    asyncio+ssl floor         1.003         0.999        0.944       0.936
    engine connect            0.088         0.082        0.089       0.089
    engine TLS                1.088         1.042        1.029       1.024
    engine TLS transport      1.198         1.171        1.130       1.133
    exporter tcp_connect      0.450         0.470        0.440       0.440
    exporter tcp_tls          1.090         1.060        1.020       1.090
    engine TLS / exporter tcp_tls              1.00   0.98   1.01   0.94
    engine TLS transport / exporter tcp_tls    1.10   1.11   1.11   1.04
    engine TLS / asyncio+ssl floor             1.08   1.04   1.09   1.09

(With the per-record chain hook, before probe/peer_state.py: 1.07 and 1.09 ECDSA, 0.98 RSA;
before the direct handshake: 1.25 ECDSA, 1.11 RSA.) Nine later runs on the final code gave
0.99-1.09, median 1.05 with both key types: parity with the exporter within the run-to-run
noise (5-10% here), not below it; docs/scaling.md has the history.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent))

# A runner imports what reads certificates (cryptography) with its first TLS probe. Imported
# here, before the rounds fork, each round's process starts as a runner that already probes
# TLS: steady state. Imported by the round's own first probe instead, the import's tens of
# thousands of young objects go through the collector's generations during the measured probes.
import tcpmonitor.probe.certificate  # noqa: F401
from blackbox_peer import BLACKBOX, drive_exporter, exporter, installed
from tcpmonitor.api import TcpMonitorSpec, Verdict
from tcpmonitor.probe import ProbeMaterial, compile_plan, probe_once

SERVER_NAME = "bench.test"
MAX_PROBES = 20_000
# A round that takes longer than this is cut short (and reported failed): no unbounded loops.
ROUND_LIMIT_SECONDS = 300.0
WARMUP_PROBES = 20


async def _tls_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The handshake is done when this runs; wait for the prober to close (or give up).
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(reader.read(), 10)
    writer.close()


async def _plain_session(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def _serve(ports: tuple[int, int], cert: str, lifetime: float) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert)

    async def main() -> None:
        await asyncio.start_server(
            _tls_session, "127.0.0.1", ports[0], ssl=context, reuse_port=True, backlog=1024
        )
        await asyncio.start_server(
            _plain_session, "127.0.0.1", ports[1], reuse_port=True, backlog=1024
        )
        await asyncio.sleep(lifetime)

    asyncio.run(main())


def _reserve_ports() -> tuple[int, int]:
    import socket  # noqa: PLC0415

    found = []
    for _ in range(2):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", 0))
            found.append(int(s.getsockname()[1]))
    return found[0], found[1]


def _floor(spec: dict[str, object], ca_pem: str) -> Callable[[], Awaitable[bool]]:
    """A bare asyncio TLS connection with a verifying context, closed at once: what any
    asyncio prober pays before it reads anything of the result."""
    context = ssl.create_default_context(cadata=ca_pem)
    host, port = str(spec["host"]), int(str(spec["port"]))

    async def once() -> bool:
        _, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=SERVER_NAME
        )
        writer.close()
        await writer.wait_closed()
        return True

    return once


def _engine(
    spec: dict[str, object], ca_pem: str, direct: bool = True
) -> Callable[[], Awaitable[bool]]:
    """The engine's probe (no re-tries, so one attempt); ``direct=False``: a TLS monitor that
    only handshakes goes through asyncio's TLS transport, as before probe/tls_socket.py."""
    plan = compile_plan(TcpMonitorSpec.model_validate(spec), ProbeMaterial(ca_pem=ca_pem))

    async def once() -> bool:
        return (await probe_once(plan, direct_tls=direct)).state is Verdict.UP

    return once


def _engine_round(
    out: Connection, kind: str, spec: dict[str, object], ca_pem: str, probes: int, width: int
) -> None:
    """In a child process: (CPU seconds, wall seconds, probes not Up) over ``probes`` probes."""
    if kind == "floor":
        once = _floor(spec, ca_pem)
    else:
        once = _engine(spec, ca_pem, direct=kind != "transport")

    async def drive(count: int) -> tuple[float, float, int]:
        left, failed = count, 0
        deadline = time.monotonic() + ROUND_LIMIT_SECONDS

        async def worker() -> None:
            nonlocal left, failed
            while left > 0 and time.monotonic() < deadline:
                left -= 1
                if not await once():
                    failed += 1

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(width)))
        return time.process_time() - cpu, time.perf_counter() - wall, failed + left

    async def main() -> tuple[float, float, int]:
        await drive(WARMUP_PROBES)
        return await drive(probes)

    out.send(asyncio.run(main()))


def engine_run(
    spec: dict[str, object], ca_pem: str, probes: int, concurrency: int, kind: str = "engine"
) -> float:
    ours, theirs = multiprocessing.Pipe()
    proc = multiprocessing.Process(
        target=_engine_round, args=(theirs, kind, spec, ca_pem, probes, concurrency)
    )
    proc.start()
    try:
        if not ours.poll(ROUND_LIMIT_SECONDS + 30):
            raise RuntimeError("the engine's round did not finish")
        cpu, _wall, failed = ours.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    if failed:
        raise RuntimeError(f"engine: {failed} of {probes} probes not Up ({spec})")
    return float(cpu) / probes


def exporter_run(port: int, pid: int, module: str, target: str, probes: int, conc: int) -> float:
    host, tport = target.rsplit(":", 1)
    result = asyncio.run(drive_exporter(port, pid, module, [(host, int(tport))], probes, conc))
    if result["success_ratio"] < 1:
        raise RuntimeError(f"exporter {module}: success ratio {result['success_ratio']:.3f}")
    return result["cpu_seconds_per_1000"] / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-processes", type=int, default=2)
    parser.add_argument("--rsa", action="store_true", help="RSA-2048 keys instead of ECDSA P-256")
    args = parser.parse_args()
    if not installed(BLACKBOX):
        print(f"{BLACKBOX} is not installed (see the docstring)", file=sys.stderr)
        return 2
    probes = max(1, min(args.probes, MAX_PROBES))
    rounds = max(1, min(args.rounds, 10))
    concurrency = max(1, min(args.concurrency, 100))

    ca = trustme.CA(key_type=trustme.KeyType.RSA if args.rsa else trustme.KeyType.ECDSA)
    ca_pem = ca.cert_pem.bytes().decode()
    samples: dict[str, list[float]] = {
        "asyncio+ssl floor": [],
        "engine connect": [],
        "engine TLS": [],
        "engine TLS transport": [],
        "exporter tcp_connect": [],
        "exporter tcp_tls": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        cert = f"{tmp}/server.pem"
        ca.issue_cert(SERVER_NAME).private_key_and_cert_chain_pem.write_to_path(cert)
        ca.cert_pem.write_to_path(f"{tmp}/ca.pem")
        tls_port, plain_port = _reserve_ports()
        servers = [
            multiprocessing.Process(
                target=_serve,
                args=((tls_port, plain_port), cert, ROUND_LIMIT_SECONDS * rounds * 4),
                daemon=True,
            )
            for _ in range(max(1, min(args.server_processes, 8)))
        ]
        for server in servers:
            server.start()
        time.sleep(1.0)
        config = (
            "modules:\n"
            "  tcp_connect:\n    prober: tcp\n    timeout: 5s\n"
            "  tcp_tls:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      tls: true\n"
            f"      tls_config:\n        ca_file: {tmp}/ca.pem\n"
            f"        server_name: {SERVER_NAME}\n"
        )
        base = {"host": "127.0.0.1", "timeout": "5s"}
        tls_spec = base | {"port": tls_port, "tls": {"enabled": True, "serverName": SERVER_NAME}}
        plain_spec = base | {"port": plain_port}
        try:
            with exporter(config) as (pid, port):
                # Warm-up of the exporter (Go runtime, first TLS config load).
                exporter_run(port, pid, "tcp_tls", f"127.0.0.1:{tls_port}", WARMUP_PROBES, 2)
                for _ in range(rounds):
                    samples["asyncio+ssl floor"].append(
                        engine_run(tls_spec, ca_pem, probes, concurrency, "floor")
                    )
                    samples["engine connect"].append(
                        engine_run(plain_spec, ca_pem, probes, concurrency)
                    )
                    samples["engine TLS"].append(engine_run(tls_spec, ca_pem, probes, concurrency))
                    samples["engine TLS transport"].append(
                        engine_run(tls_spec, ca_pem, probes, concurrency, "transport")
                    )
                    samples["exporter tcp_connect"].append(
                        exporter_run(
                            port, pid, "tcp_connect", f"127.0.0.1:{plain_port}", probes, concurrency
                        )
                    )
                    samples["exporter tcp_tls"].append(
                        exporter_run(
                            port, pid, "tcp_tls", f"127.0.0.1:{tls_port}", probes, concurrency
                        )
                    )
        finally:
            for server in servers:
                server.kill()
                server.join(5)

    cpu = {name: statistics.median(values) for name, values in samples.items()}
    ours_increment = cpu["engine TLS"] - cpu["engine connect"]
    theirs_increment = cpu["exporter tcp_tls"] - cpu["exporter tcp_connect"]
    key = "RSA-2048" if args.rsa else "ECDSA P-256"
    print(f"{probes} probes x {rounds} rounds, concurrency {concurrency}, {key}; medians")
    print(f"{'contender':<22} {'CPU ms/probe':>13}   rounds")
    for name, values in samples.items():
        rounds_ms = " ".join(f"{v * 1000:.3f}" for v in values)
        print(f"{name:<22} {cpu[name] * 1000:>13.3f}   {rounds_ms}")
    ratios = {
        "tls_engine_over_exporter": cpu["engine TLS"] / cpu["exporter tcp_tls"],
        "tls_engine_transport_over_exporter": cpu["engine TLS transport"] / cpu["exporter tcp_tls"],
        "tls_engine_over_engine_transport": cpu["engine TLS"] / cpu["engine TLS transport"],
        "tls_increment_engine_over_exporter": ours_increment / theirs_increment,
        "connect_engine_over_exporter": cpu["engine connect"] / cpu["exporter tcp_connect"],
        "tls_engine_over_asyncio_ssl_floor": cpu["engine TLS"] / cpu["asyncio+ssl floor"],
        "tls_asyncio_ssl_floor_over_exporter": cpu["asyncio+ssl floor"] / cpu["exporter tcp_tls"],
    }
    print(json.dumps({k: round(v, 3) for k, v in ratios.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
