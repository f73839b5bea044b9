"""Which address families this host can use, as getaddrinfo's AI_ADDRCONFIG decides it.

A monitor that names its target without an ``ipFamily`` asks for any address. In a pod that is
the usual case, and with ``ndots:5`` and three search domains one lookup is up to four names,
each asked twice (A and AAAA). In an IPv4-only cluster every AAAA question is wasted: the answer
could not be connected to anyway. RFC 3493's AI_ADDRCONFIG says what glibc, musl and Go do about
it: ask for IPv6 only when the host has an IPv6 address other than loopback, and for IPv4 only
when it has IPv4 other than loopback. That halves the queries a runner sends to the cluster's
DNS, and the work the runner's one thread spends on the replies.

The kernel's own tables say it, read from /proc (no socket, no packet): an IPv6 address of
global scope in ``if_inet6`` (unique-local ``fd00::/8`` included; loopback and link-local are
not usable for a service's address), and for IPv4 a route in the main table (``route``: a pod's
default route; loopback's routes live in the local table). When the files cannot be read or
show neither family, nothing is narrowed. The answer is cached for a while: interfaces change
seldom, and a late IPv6 address is picked up within ``refresh`` seconds.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REFRESH = 30.0
_GLOBAL_SCOPE = "00"


def ipv6_configured(if_inet6: str) -> bool:
    """An IPv6 address of global scope in /proc/net/if_inet6's text."""
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == _GLOBAL_SCOPE:
            return True
    return False


def ipv4_configured(route: str) -> bool:
    """A route in /proc/net/route's text (the first line is its header)."""
    return any(line.split() for line in route.splitlines()[1:])


def family_to_ask(ipv4: bool, ipv6: bool) -> int:
    """The family a lookup for any address asks for: one when only one is usable."""
    if ipv4 and not ipv6:
        return socket.AF_INET
    if ipv6 and not ipv4:
        return socket.AF_INET6
    return socket.AF_UNSPEC


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@dataclass
class HostFamilies:
    """The host's usable families, read from ``proc`` (/proc/net by default) and cached."""

    proc: Path = Path("/proc/net")
    refresh: float = DEFAULT_REFRESH
    _family: int = field(default=socket.AF_UNSPEC, init=False)
    _read_at: float | None = field(default=None, init=False)

    def for_any(self) -> int:
        """What to ask for when the monitor asks for any family."""
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self.refresh:
            self._read_at = now
            inet6 = _read(self.proc / "if_inet6")
            route = _read(self.proc / "route")
            if route is None:
                self._family = socket.AF_UNSPEC  # no /proc to tell: ask for both
            else:
                # No if_inet6 at all: a kernel without IPv6.
                ipv6 = inet6 is not None and ipv6_configured(inet6)
                self._family = family_to_ask(ipv4_configured(route), ipv6)
        return self._family
