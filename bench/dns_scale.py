"""10,000 monitors by host name through a real DNS server, one run per resolution path.

What it builds (root, iproute2 and unbound: ``apt-get install unbound``), all of it inside two
network namespaces it creates and deletes again, so no packet leaves them:

- ``tcpm-dns-srv``: unbound on 127.0.0.1:5300, authoritative (local-data) for ``cluster.local``
  with 10,000 services ``s<i>.ns<j>.svc.cluster.local`` (TTL ``--ttl``), a stub zone
  ``broken.svc.cluster.local`` whose server is a closed port (unbound answers SERVFAIL), and
  nothing else (``.`` is a static zone: every other name is NXDOMAIN). In front of it, on
  10.231.0.1:53, a relay that adds 2-5 ms to each query (``tc netem`` on the veth when the
  kernel has it; this one may not) and never answers names under
  ``blackhole.svc.cluster.local`` (the timeout case).
- ``tcpm-dns-probe``: the prober, joined to the first by a veth (10.231.0.2/24), with a pod's
  resolv.conf through ``ip netns exec`` (``/etc/netns/tcpm-dns-probe/resolv.conf``: nameserver
  10.231.0.1, ``search ns0.svc.cluster.local svc.cluster.local cluster.local``,
  ``options ndots:5``), and the accept-and-close targets on its own loopback (127.0.0.1-8).

The monitors name their targets as people do in a pod: a third by short name (``s7``), a third
as ``s7.ns3``, a third fully (``s7.ns3.svc.cluster.local``, still fewer than five dots, so the
search list is tried first); 1 % are names that do not exist, 10 ask the SERVFAIL zone, 10 the
silent one. The real MonitorRuntime and Scheduler run them at ``--interval``; per variant the
bench reports schedule lag p50/p99/max (slot to probe start, every probe), skipped and starved
slots, the DNS phase the results carry (p50/p99), error codes, and the prober's CPU share.

Variants (``--variants``):
- ``getaddrinfo``: before this change, ``loop.getaddrinfo`` on asyncio's default thread pool;
  its ``dns reported`` column is what the results said then (queue for a thread included),
  ``dns`` the time inside the thread.
- ``getaddrinfo-pool64``: the same on a 64-thread pool.
- ``c-ares``: the engine's resolver (probe/resolver.py): c-ares (pycares) on the event loop,
  search list and ndots from resolv.conf, cache by TTL, and only the families the prober's
  namespace has addresses of (IPv4 here: A questions only; probe/address_families.py).
- ``c-ares-both``: the same asking A and AAAA for every name (before AI_ADDRCONFIG).
- ``dnspython``: the pure-Python alternative (``pip install dnspython``, not a dependency):
  dnspython's asyncio resolver with the same search list, ndots and an LRU cache by TTL.

    python bench/dns_scale.py [--monitors 10000] [--interval 10] [--duration 60] [--ttl 30]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_listener import LoopbackListener
from runtime_fakes import CountingReporter, NoReferences
from tcpmonitor.api import ErrorCode, ProbeResult, TcpMonitor
from tcpmonitor.probe import ProbePlan, run_probe
from tcpmonitor.probe.failures import ProbeFailure
from tcpmonitor.probe.resolver import (
    NameResolver,
    ResolutionClock,
    system_resolver,
    use_resolver,
)
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.metrics import Metrics

SERVER_NS = "tcpm-dns-srv"
PROBE_NS = "tcpm-dns-probe"
SERVER_ADDR = "10.231.0.1"
PROBE_ADDR = "10.231.0.2"
UNBOUND_PORT = 5300
ZONE_NAMESPACES = 10
SEARCH = ["ns0.svc.cluster.local", "svc.cluster.local", "cluster.local"]
VARIANTS = ["getaddrinfo", "getaddrinfo-pool64", "c-ares-both", "c-ares", "dnspython"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the monitors' names and the zone behind them -------------------------------------------


def service(i: int) -> tuple[str, int]:
    """Service i: its namespace and which of the 8 loopback targets it points to."""
    return f"ns{i % ZONE_NAMESPACES}", i % 8


def monitor_host(i: int) -> str:
    if i % 100 == 99:
        return f"missing{i}.ns1"
    if i < 10:
        return f"s{i}.broken.svc.cluster.local"
    if i < 20:
        return f"s{i}.blackhole.svc.cluster.local"
    ns, _ = service(i)
    form = i % 3
    if form == 0:
        return f"s{i}" if ns == "ns0" else f"s{i}.{ns}"  # the short name only in our namespace
    if form == 1:
        return f"s{i}.{ns}"
    return f"s{i}.{ns}.svc.cluster.local"


def unbound_conf(directory: Path, monitors: int, ttl: int) -> Path:
    lines = [
        "server:",
        f"  interface: 127.0.0.1@{UNBOUND_PORT}",
        "  do-daemonize: no",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{directory}"',
        '  pidfile: ""',
        "  use-syslog: no",
        "  verbosity: 0",
        "  do-ip6: no",
        "  num-threads: 1",
        "  access-control: 127.0.0.0/8 allow",
        '  module-config: "iterator"',
        "  so-reuseport: no",
        "  so-rcvbuf: 4m",  # the server is not what is measured: it must not drop queries
        '  local-zone: "." static',
        '  local-zone: "cluster.local." static',
        f'  local-data: "cluster.local. {ttl} IN SOA ns.cluster.local. hostmaster.cluster.local.'
        f' 1 3600 600 86400 {ttl}"',
        '  local-zone: "broken.svc.cluster.local." transparent',
    ]
    for i in range(monitors):
        ns, target = service(i)
        lines.append(
            f'  local-data: "s{i}.{ns}.svc.cluster.local. {ttl} IN A 127.0.0.{1 + target}"'
        )
    lines += [
        "stub-zone:",
        '  name: "broken.svc.cluster.local."',
        "  stub-addr: 127.0.0.1@1",
        "remote-control:",
        "  control-enable: no",
        "",
    ]
    path = directory / "unbound.conf"
    path.write_text("\n".join(lines))
    return path


# --- the relay in front of unbound: the added latency and the silent zone --------------------


def _qname(wire: bytes) -> bytes:
    labels, offset = [], 12
    while offset < len(wire) and wire[offset]:
        length = wire[offset]
        labels.append(wire[offset + 1 : offset + 1 + length])
        offset += 1 + length
    return b".".join(labels).lower()


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, delay: tuple[float, float]) -> None:
        self.delay = delay
        self.pending: dict[bytes, list[tuple[str, int]]] = {}
        self.front: asyncio.DatagramTransport | None = None
        self.back: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or b"blackhole" in _qname(data):
            return
        key = data[:2] + _qname(data)
        self.pending.setdefault(key, []).append(addr)
        wait = random.uniform(*self.delay) if self.delay[1] else 0.0
        assert self.back is not None
        asyncio.get_running_loop().call_later(wait, self.back.sendto, data)

    def reply(self, data: bytes) -> None:
        waiting = self.pending.get(data[:2] + _qname(data))
        if waiting and self.front is not None:
            self.front.sendto(data, waiting.pop(0))
            if not waiting:
                del self.pending[data[:2] + _qname(data)]


class _Back(asyncio.DatagramProtocol):
    def __init__(self, relay: _Relay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.reply(data)


async def relay_main(delay_ms: tuple[float, float]) -> None:
    loop = asyncio.get_running_loop()
    relay = _Relay((delay_ms[0] / 1000, delay_ms[1] / 1000))
    front, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=(SERVER_ADDR, 53))
    back, _ = await loop.create_datagram_endpoint(
        lambda: _Back(relay), remote_addr=("127.0.0.1", UNBOUND_PORT)
    )
    relay.front, relay.back = front, back  # type: ignore[assignment]
    print("ready", flush=True)
    await asyncio.sleep(24 * 3600)


# --- the prober (runs inside the probe namespace) --------------------------------------------


class GetaddrinfoResolver(NameResolver):
    """The path before this change: getaddrinfo on a thread pool (None: the loop's default)."""

    def __init__(self, pool: concurrent.futures.Executor | None, reported: list[float]) -> None:
        super().__init__()
        self.pool, self.reported = pool, reported

    async def resolve(
        self, host: str, port: int, family: int, clock: ResolutionClock, lifetime: float
    ) -> list[tuple[int, tuple[object, ...]]]:
        loop = asyncio.get_running_loop()
        queued = time.perf_counter()

        def work() -> list[Any]:
            clock.start()
            try:
                return socket.getaddrinfo(
                    host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP
                )
            finally:
                clock.stop()

        try:
            infos = await loop.run_in_executor(self.pool, work)
        except socket.gaierror as exc:
            code = (
                ErrorCode.DNS_NOT_FOUND
                if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
                else ErrorCode.DNS_ERROR
            )
            raise ProbeFailure(code, f"{host}: {exc.strerror}") from None
        finally:
            self.reported.append(time.perf_counter() - queued)
        return [(f, sa) for f, _, _, _, sa in infos]


class DnspythonResolver(NameResolver):
    """dnspython's asyncio resolver: search list, ndots, and its LRU cache by TTL."""

    def __init__(self) -> None:
        super().__init__()
        import dns.asyncresolver  # noqa: PLC0415 (optional: only this variant needs it)
        import dns.resolver  # noqa: PLC0415

        self.dns = dns.asyncresolver.Resolver()
        self.dns.cache = dns.resolver.LRUCache(20_000)
        self.dns.use_search_by_default = True

    async def resolve(
        self, host: str, port: int, family: int, clock: ResolutionClock, lifetime: float
    ) -> list[tuple[int, tuple[object, ...]]]:
        import dns.exception  # noqa: PLC0415
        import dns.resolver  # noqa: PLC0415

        rdtypes = {socket.AF_INET: ["A"], socket.AF_INET6: ["AAAA"]}.get(family, ["A", "AAAA"])
        clock.start()
        try:
            outcomes = await asyncio.gather(
                *(
                    self.dns.resolve(host, t, lifetime=lifetime, raise_on_no_answer=False)
                    for t in rdtypes
                ),
                return_exceptions=True,
            )
        finally:
            clock.stop()
        found: list[tuple[int, tuple[object, ...]]] = []
        for t, outcome in zip(rdtypes, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                fam = socket.AF_INET6 if t == "AAAA" else socket.AF_INET
                found += [(fam, (r.address, port)) for r in outcome.rrset or ()]
        if found:
            return found
        if any(isinstance(o, dns.resolver.NXDOMAIN) for o in outcomes):
            raise ProbeFailure(ErrorCode.DNS_NOT_FOUND, f"{host}: NXDOMAIN")
        if any(isinstance(o, dns.exception.Timeout) for o in outcomes):
            raise ProbeFailure(ErrorCode.DNS_TIMEOUT, f"{host}: timeout")
        raise ProbeFailure(ErrorCode.DNS_ERROR, f"{host}: {outcomes[0]}")


def install_variant(variant: str) -> tuple[list[float], Any]:
    """Install the resolution path; returns where the 'dns reported' times go."""

    reported: list[float] = []
    if variant == "c-ares":
        use_resolver(system_resolver())
        return reported, None
    if variant == "c-ares-both":
        use_resolver(NameResolver())  # A and AAAA for every name, whatever the host has
        return reported, None
    if variant == "dnspython":
        use_resolver(DnspythonResolver())
        return reported, None
    pool = (
        concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="dns")
        if variant == "getaddrinfo-pool64"
        else None
    )

    use_resolver(GetaddrinfoResolver(pool, reported))
    return reported, pool


async def probe_run(args: argparse.Namespace, targets: list[tuple[str, int]]) -> dict[str, Any]:

    reported, pool = install_variant(args.variant)
    lags: list[float] = []
    dns_ms: list[float] = []
    dns_ok_ms: list[float] = []  # the probes whose name resolved
    codes: Counter[str] = Counter()
    measuring = False

    async def recording(plan: ProbePlan) -> ProbeResult:
        result = await run_probe(plan)
        if measuring:
            if result.timings.dns is not None:
                dns_ms.append(result.timings.dns)
                if result.timings.connect is not None:
                    dns_ok_ms.append(result.timings.dns)
            codes[result.error.code if result.error else "OK"] += 1
        return result

    settings = RuntimeSettings(heartbeat=60, max_concurrency=512)
    runtime = MonitorRuntime(
        CountingReporter(), NoReferences(), Metrics(), settings, probe=recording
    )
    runtime.scheduler._on_lag = lags.append  # exact samples instead of histogram buckets
    for i in range(args.monitors):
        _, target = service(i)
        await runtime.apply(
            TcpMonitor.model_validate(
                {
                    "apiVersion": "tcpmonitor.dev/v1alpha1",
                    "kind": "TcpMonitor",
                    "metadata": {"name": f"m{i:05d}", "namespace": "bench", "generation": 1},
                    "spec": {
                        "host": monitor_host(i),
                        "port": targets[target][1],
                        "interval": f"{args.interval:g}s",
                        "timeout": "2s",
                    },
                }
            )
        )
    await asyncio.sleep(args.interval * 1.5)  # the immediate first probes, then one interval
    lags.clear()
    reported.clear()
    measuring = True
    stats = runtime.scheduler.stats
    probes0, skipped0, starved0 = stats.probes_started, stats.slots_skipped, stats.probes_starved
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(args.duration)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    measuring = False
    result = {
        "variant": args.variant,
        "monitors": args.monitors,
        "measured_s": round(wall, 1),
        "probes": stats.probes_started - probes0,
        "slots_skipped": stats.slots_skipped - skipped0,
        "probes_starved": stats.probes_starved - starved0,
        "lag_ms": {
            "p50": round(statistics.median(lags) * 1000, 2),
            "p99": round(percentile(lags, 0.99) * 1000, 2),
            "max": round(max(lags) * 1000, 2),
        },
        "dns_ms": {
            "p50": round(percentile(dns_ms, 0.5), 2),
            "p99": round(percentile(dns_ms, 0.99), 2),
        },
        "dns_resolved_ms": {
            "p50": round(percentile(dns_ok_ms, 0.5), 2),
            "p99": round(percentile(dns_ok_ms, 0.99), 2),
        },
        "dns_reported_ms": (
            {
                "p50": round(percentile(reported, 0.5) * 1000, 2),
                "p99": round(percentile(reported, 0.99) * 1000, 2),
            }
            if reported
            else None
        ),
        "codes": dict(codes.most_common()),
        "cpu_share_of_one_core": round(cpu / wall, 3),
    }
    await runtime.close()
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    return result


def prober_main(args: argparse.Namespace) -> None:

    with LoopbackListener() as targets:
        result = asyncio.run(probe_run(args, targets))
    print("RESULT " + json.dumps(result), flush=True)


# --- the namespaces, unbound and the runs ------------------------------------------------------


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def teardown() -> None:
    for ns in (SERVER_NS, PROBE_NS):
        sh("ip", "netns", "del", ns, check=False)
    shutil.rmtree(f"/etc/netns/{PROBE_NS}", ignore_errors=True)


def build_namespaces() -> bool:
    """Two namespaces and a veth; True when netem adds the latency (else the relay does)."""
    teardown()
    sh("ip", "netns", "add", SERVER_NS)
    sh("ip", "netns", "add", PROBE_NS)
    sh("ip", "-n", SERVER_NS, "link", "add", "dns0", "type", "veth", "peer", "probe0")
    sh("ip", "-n", SERVER_NS, "link", "set", "probe0", "netns", PROBE_NS)
    for ns, dev, addr in ((SERVER_NS, "dns0", SERVER_ADDR), (PROBE_NS, "probe0", PROBE_ADDR)):
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    netem = sh(
        "ip", "netns", "exec", SERVER_NS,
        "tc", "qdisc", "add", "dev", "dns0", "root", "netem", "delay", "3.5ms", "1.5ms",
        check=False,
    )  # fmt: skip
    resolv = Path(f"/etc/netns/{PROBE_NS}")
    resolv.mkdir(parents=True, exist_ok=True)
    (resolv / "resolv.conf").write_text(
        f"nameserver {SERVER_ADDR}\nsearch {' '.join(SEARCH)}\noptions ndots:5\n"
    )
    return netem.returncode == 0


def parent_main(args: argparse.Namespace) -> None:
    if os.geteuid() != 0 or not shutil.which("unbound"):
        sys.exit("needs root and unbound (apt-get install unbound)")
    here = Path(__file__).resolve()
    env = dict(os.environ, PYTHONPATH=str(here.parent.parent / "operator"))
    workdir = Path(tempfile.mkdtemp(prefix="tcpm-dns-"))
    children: list[subprocess.Popen[str]] = []
    results: list[dict[str, Any]] = []
    try:
        netem = build_namespaces()
        conf = unbound_conf(workdir, args.monitors, args.ttl)
        sh("unbound-checkconf", str(conf))
        children.append(
            subprocess.Popen(
                ["ip", "netns", "exec", SERVER_NS, "unbound", "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=open(workdir / "unbound.log", "w"),  # noqa: SIM115
                text=True,
            )
        )
        delay = "0,0" if netem else "2,5"
        relay = subprocess.Popen(
            ["ip", "netns", "exec", SERVER_NS, sys.executable, str(here), "--relay", delay],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        children.append(relay)
        assert relay.stdout is not None
        relay.stdout.readline()
        time.sleep(1.0)  # unbound loads the zone
        print(f"latency by {'netem on the veth' if netem else 'the relay (no netem here)'}",
              file=sys.stderr)  # fmt: skip
        for variant in args.variants.split(","):
            child = subprocess.run(
                ["ip", "netns", "exec", PROBE_NS, sys.executable, str(here), "--prober",
                 "--variant", variant, "--monitors", str(args.monitors),
                 "--interval", str(args.interval), "--duration", str(args.duration)],
                check=False, capture_output=True, text=True, env=env,
                timeout=args.duration + args.interval * 3 + 120,
            )  # fmt: skip
            lines = [ln for ln in child.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                print(child.stderr[-3000:], file=sys.stderr)
                continue
            results.append(json.loads(lines[-1][len("RESULT ") :]))
            print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        for child in reversed(children):
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
        teardown()
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        "| variant | lag p50 / p99 / max ms | skipped | starved | dns p50 / p99 ms "
        "| dns of resolved names p50 / p99 ms | dns reported p50 / p99 ms | CPU (one core) |"
    )
    print(header)
    print("|" + "---|" * 8)
    for r in results:
        lag, dns, rep = r["lag_ms"], r["dns_ms"], r["dns_reported_ms"]
        ok = r["dns_resolved_ms"]
        reported = f"{rep['p50']} / {rep['p99']}" if rep else "= dns"
        print(
            f"| {r['variant']} | {lag['p50']} / {lag['p99']} / {lag['max']} | "
            f"{r['slots_skipped']} | {r['probes_starved']} | {dns['p50']} / {dns['p99']} | "
            f"{ok['p50']} / {ok['p99']} | "
            f"{reported} | {r['cpu_share_of_one_core']:.0%} |"
        )
    for r in results:
        print(f"{r['variant']}: {r['probes']} probes in {r['measured_s']} s; codes {r['codes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds a variant")
    parser.add_argument("--ttl", type=int, default=30, help="TTL of the zone's records")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--prober", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--relay", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        low, high = (float(x) for x in args.relay.split(","))
        asyncio.run(relay_main((low, high)))
    elif args.prober:
        prober_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
