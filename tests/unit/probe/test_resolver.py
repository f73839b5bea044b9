"""Name resolution through a real DNS server on loopback: phase timing, error codes, search list,
TTL cache, /etc/hosts names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpmonitor.api import ErrorCode, ProbeResult, Verdict
from tcpmonitor.probe.address_families import HostFamilies
from tcpmonitor.probe.resolver import NameResolver, use_resolver

from ..probing import probe
from ..servers import closed_port, serve, silent
from .dns_server import DnsServer, dns_server


@pytest.fixture(autouse=True)
def _system_resolver_afterwards() -> Iterator[None]:
    yield
    use_resolver(None)


def resolver_for(server: DnsServer, **options: Any) -> NameResolver:
    resolver = NameResolver.configured(["127.0.0.1"], port=server.port, **options)
    use_resolver(resolver)
    return resolver


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_dns_phase_excludes_the_wait_for_a_free_resolver_slot() -> None:
    """Six names, two slots, 200 ms per answer: the probes wait in three waves, yet each one's
    DNS phase is one answer's time, not the queue before it."""
    names = [f"svc{i}.test" for i in range(6)]

    async def scenario() -> tuple[float, list[ProbeResult]]:
        async with dns_server({n: ["127.0.0.1"] for n in names}, delay=0.2) as server:
            resolver_for(server, max_in_flight=2)
            async with serve(silent) as port:
                started = time.perf_counter()
                results = await asyncio.gather(
                    *(probe(port, host=n, ipFamily="IPv4", timeout="5s") for n in names)
                )
                return time.perf_counter() - started, list(results)

    elapsed, results = run(scenario())
    assert elapsed >= 0.6  # three waves of two: the slots really were saturated
    for result in results:
        assert result.state is Verdict.UP, result.error
        assert result.timings.dns is not None and 195 <= result.timings.dns < 380


def test_nxdomain_is_dns_not_found() -> None:
    async def scenario() -> ProbeResult:
        async with dns_server({}) as server:
            resolver_for(server)
            return await probe(80, host="missing.test")

    result = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.DNS_NOT_FOUND
    assert "NXDOMAIN" in result.error.message


@pytest.mark.parametrize("name", ["servfail.test", "refused.test"])
def test_servfail_and_refused_are_dns_error(name: str) -> None:
    async def scenario() -> ProbeResult:
        async with dns_server({}) as server:
            resolver_for(server)
            return await probe(80, host=name)

    result = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.DNS_ERROR
    assert ("SERVFAIL" if name.startswith("servfail") else "REFUSED") in result.error.message


def test_unreachable_resolver_is_dns_error() -> None:
    use_resolver(NameResolver.configured(["127.0.0.1"], port=closed_port()))
    result = run(probe(80, host="anything.test"))
    assert result.error is not None and result.error.code == ErrorCode.DNS_ERROR
    assert "refused" in result.error.message.lower()


def test_silent_resolver_is_dns_timeout_within_the_probe_timeout() -> None:
    async def scenario() -> ProbeResult:
        async with dns_server({}) as server:
            resolver_for(server, attempt_timeout=0.2)
            return await probe(80, host="silent.test", timeout="0.6s")

    result = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.DNS_TIMEOUT
    assert result.timings.dns is not None and 150 <= result.timings.dns <= 700
    assert result.timings.total <= 700


def test_search_list_and_ndots_as_in_a_pod() -> None:
    """ndots:5: a name with fewer dots is tried under each search domain first, in order."""
    search = ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]

    async def scenario() -> tuple[DnsServer, ProbeResult, ProbeResult]:
        records = {"redis.cache.svc.cluster.local": ["127.0.0.1"], "a.b.c.d.e.f": ["127.0.0.1"]}
        async with dns_server(records) as server:
            resolver_for(server, search=search, ndots=5)
            async with serve(silent) as port:
                short = await probe(port, host="redis.cache", ipFamily="IPv4")
                dotted = await probe(port, host="a.b.c.d.e.f", ipFamily="IPv4")
            return server, short, dotted

    server, short, dotted = run(scenario())
    assert short.state is Verdict.UP and dotted.state is Verdict.UP
    assert [q for q, _ in server.questions] == [
        "redis.cache.ns.svc.cluster.local",
        "redis.cache.svc.cluster.local",
        "a.b.c.d.e.f",  # five dots: absolute first, and it exists
    ]


def test_answers_and_nxdomains_are_cached_for_their_ttl() -> None:
    async def scenario() -> tuple[list[int], list[ProbeResult]]:
        async with dns_server({"web.test": ["127.0.0.1"]}, ttl=1) as server:
            resolver_for(server)
            asked: list[int] = []
            results = []
            async with serve(silent) as port:
                steps = [
                    ("web.test", 0.0),
                    ("web.test", 0.0),
                    ("gone.test", 0.0),
                    ("gone.test", 0.0),
                    ("gone.test", 1.2),
                    ("web.test", 0.0),
                ]
                for name, pause in steps:
                    await asyncio.sleep(pause)
                    results.append(await probe(port, host=name, ipFamily="IPv4"))
                    asked.append(len(server.questions))
            return asked, results

    asked, results = run(scenario())
    # Each name asked once, then answered from a cache (the NXDOMAIN too) until its TTL is over.
    assert asked == [1, 1, 2, 2, 3, 4]
    assert [r.state for r in results].count(Verdict.UP) == 3
    assert results[3].error is not None and results[3].error.code == ErrorCode.DNS_NOT_FOUND


def test_the_lookup_cache_is_bounded_in_entries_and_by_max_ttl() -> None:
    names = [f"n{i}.test" for i in range(5)]

    async def scenario() -> NameResolver:
        async with dns_server({n: ["127.0.0.1"] for n in names}, ttl=3600) as server:
            resolver = resolver_for(server, cache_entries=3, max_ttl=60)
            for name in names:
                await probe(80, host=name, ipFamily="IPv4", timeout="1s")
            return resolver

    resolver = run(scenario())
    entries = resolver._cache
    assert [host for host, _ in entries] == ["n2.test", "n3.test", "n4.test"]  # oldest evicted
    left = [entry.expires - time.monotonic() for entry in entries.values()]
    assert all(50 < seconds <= 60 for seconds in left)  # the hour the server gave, capped


def test_localhost_resolves_from_the_hosts_file_without_a_nameserver() -> None:
    use_resolver(NameResolver.configured(["127.0.0.1"], port=closed_port()))

    async def scenario() -> ProbeResult:
        async with serve(silent) as port:
            return await probe(port, host="localhost", ipFamily="IPv4")

    result = run(scenario())
    assert result.state is Verdict.UP, result.error
    assert result.remote_address is not None and result.remote_address.startswith("127.0.0.1:")


def test_ip_family_selects_a_or_aaaa() -> None:
    async def scenario() -> tuple[ProbeResult, ProbeResult, DnsServer]:
        async with dns_server({"v6.test": ["::1"]}) as server:
            resolver_for(server)
            async with serve(silent, host="::1") as port:
                v4 = await probe(port, host="v6.test", ipFamily="IPv4")
                v6 = await probe(port, host="v6.test", ipFamily="IPv6")
            return v4, v6, server

    v4, v6, server = run(scenario())
    assert v4.error is not None and v4.error.code == ErrorCode.DNS_NOT_FOUND
    assert v6.state is Verdict.UP and v6.remote_address is not None
    assert v6.remote_address.startswith("[::1]:")
    assert server.questions == [("v6.test", "A"), ("v6.test", "AAAA")]


def test_any_family_asks_only_the_families_the_host_has(tmp_path: Path) -> None:
    """AI_ADDRCONFIG: an IPv4-only host asks A alone for a monitor without ipFamily, and a name
    with only an AAAA record says why it is not found."""
    (tmp_path / "route").write_text("Iface\tDestination\neth0\t00000000\n")
    (tmp_path / "if_inet6").write_text("00000000000000000000000000000001 01 80 10 80 lo\n")

    async def scenario() -> tuple[DnsServer, ProbeResult, ProbeResult]:
        async with dns_server({"v4.test": ["127.0.0.1"], "v6.test": ["::1"]}) as server:
            resolver_for(server, host_families=HostFamilies(tmp_path))
            async with serve(silent) as port:
                v4 = await probe(port, host="v4.test")
                v6 = await probe(port, host="v6.test")
            return server, v4, v6

    server, v4, v6 = run(scenario())
    assert v4.state is Verdict.UP, v4.error
    assert v6.error is not None and v6.error.code == ErrorCode.DNS_NOT_FOUND
    assert "no IPv4 address" in v6.error.message
    assert server.questions == [("v4.test", "A"), ("v6.test", "A")]


def test_any_family_asks_both_on_a_dual_stack_host(tmp_path: Path) -> None:
    (tmp_path / "route").write_text("Iface\tDestination\neth0\t00000000\n")
    (tmp_path / "if_inet6").write_text("fd000000000000000000000000000002 04 40 00 82 eth0\n")

    async def scenario() -> DnsServer:
        async with dns_server({"v4.test": ["127.0.0.1"]}) as server:
            resolver_for(server, host_families=HostFamilies(tmp_path))
            async with serve(silent) as port:
                result = await probe(port, host="v4.test")
                assert result.state is Verdict.UP, result.error
            return server

    assert sorted(run(scenario()).questions) == [("v4.test", "A"), ("v4.test", "AAAA")]
