"""Which families a lookup for any address asks: the kernel's tables read as AI_ADDRCONFIG does,
from files in /proc's format and from a network namespace this test builds."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tcpmonitor.probe.address_families import (
    HostFamilies,
    family_to_ask,
    ipv4_configured,
    ipv6_configured,
)

ROUTE_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
)
DEFAULT_ROUTE = "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
LOOPBACK6 = "00000000000000000000000000000001 01 80 10 80       lo\n"
LINK_LOCAL6 = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
UNIQUE_LOCAL6 = "fd000000000000000000000000000002 04 40 00 82     eth0\n"


def proc(tmp_path: Path, route: str | None, if_inet6: str | None) -> Path:
    if route is not None:
        (tmp_path / "route").write_text(route)
    if if_inet6 is not None:
        (tmp_path / "if_inet6").write_text(if_inet6)
    return tmp_path


def test_loopback_and_link_local_ipv6_are_not_a_configured_family() -> None:
    assert not ipv6_configured(LOOPBACK6 + LINK_LOCAL6)
    assert ipv6_configured(LOOPBACK6 + LINK_LOCAL6 + UNIQUE_LOCAL6)


def test_an_ipv4_route_in_the_main_table_is_a_configured_family() -> None:
    assert not ipv4_configured(ROUTE_HEADER)
    assert ipv4_configured(ROUTE_HEADER + DEFAULT_ROUTE)


@pytest.mark.parametrize(
    ("ipv4", "ipv6", "family"),
    [
        (True, False, socket.AF_INET),
        (False, True, socket.AF_INET6),
        (True, True, socket.AF_UNSPEC),
        (False, False, socket.AF_UNSPEC),  # loopback only: narrowing would lose localhost
    ],
)
def test_one_family_is_asked_only_when_the_host_has_only_that_one(
    ipv4: bool, ipv6: bool, family: int
) -> None:
    assert family_to_ask(ipv4, ipv6) == family


def test_ipv4_only_pod(tmp_path: Path) -> None:
    view = HostFamilies(proc(tmp_path, ROUTE_HEADER + DEFAULT_ROUTE, LOOPBACK6 + LINK_LOCAL6))
    assert view.for_any() == socket.AF_INET


def test_a_kernel_without_ipv6_is_ipv4_only(tmp_path: Path) -> None:
    assert HostFamilies(proc(tmp_path, ROUTE_HEADER + DEFAULT_ROUTE, None)).for_any() == (
        socket.AF_INET
    )


def test_unreadable_tables_narrow_nothing(tmp_path: Path) -> None:
    assert HostFamilies(proc(tmp_path, None, UNIQUE_LOCAL6)).for_any() == socket.AF_UNSPEC


def test_a_late_address_is_seen_after_the_refresh(tmp_path: Path) -> None:
    view = HostFamilies(proc(tmp_path, ROUTE_HEADER + DEFAULT_ROUTE, LOOPBACK6), refresh=0.0)
    assert view.for_any() == socket.AF_INET
    (tmp_path / "if_inet6").write_text(LOOPBACK6 + UNIQUE_LOCAL6)
    assert view.for_any() == socket.AF_UNSPEC
    cached = HostFamilies(proc(tmp_path, ROUTE_HEADER + DEFAULT_ROUTE, LOOPBACK6), refresh=3600)
    assert cached.for_any() == socket.AF_INET
    (tmp_path / "if_inet6").write_text(LOOPBACK6 + UNIQUE_LOCAL6)
    assert cached.for_any() == socket.AF_INET  # read once an hour


ASK = (
    "import socket; from tcpmonitor.probe.address_families import HostFamilies; "
    "print(socket.AddressFamily(HostFamilies().for_any()).name)"
)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)
def test_the_kernels_own_tables_in_a_namespace_built_here() -> None:
    """A namespace with loopback only asks both; give it an IPv4 address and route and it asks
    A only; give it a global IPv6 address too and it asks both again."""
    ns = f"tcpm-af-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[3] / "operator"))

    def ip(*argv: str) -> None:
        subprocess.run(["ip", "-n", ns, *argv], check=True, capture_output=True)

    def asked() -> str:
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", ASK],
            check=True, capture_output=True, text=True, env=env, timeout=30,
        )  # fmt: skip
        return out.stdout.strip()

    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        ip("link", "set", "lo", "up")
        assert asked() == "AF_UNSPEC"
        ip("link", "add", "af0", "type", "veth", "peer", "af1")
        ip("link", "set", "af0", "up")
        ip("addr", "add", "10.231.7.2/24", "dev", "af0")
        assert asked() == "AF_INET"
        ip("addr", "add", "fd00:231:7::2/64", "dev", "af0", "nodad")
        assert asked() == "AF_UNSPEC"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
