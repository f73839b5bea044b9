"""Host names to addresses without a thread per lookup: c-ares on the event loop, cached by TTL.

``getaddrinfo`` blocks, so asyncio runs it on a small thread pool: at a few hundred lookups a
second (or with a handful of names whose server never answers) the probes queue for a thread,
the schedule slips and the DNS phase counts the wait. c-ares sends the queries itself and hands
back one result per lookup. It reads the files the C library reads (resolv.conf with its search
list, ``ndots``, timeout and attempts; /etc/hosts, so ``localhost`` resolves; nsswitch's order)
once, when the process first resolves a name; sorts the addresses as getaddrinfo does (RFC
6724); and caches answers and NXDOMAINs for their TTL. Its sockets are watched by the event
loop: no c-ares thread, and no reloading of resolv.conf behind our back. On top of it a small
cache of whole lookups, bounded in entries and by ``max_ttl``, spares the probes of a name even
the round trip into c-ares.

A monitor that asks for any family gets only the families the host has addresses of
(AI_ADDRCONFIG, probe/address_families.py): in an IPv4-only pod no AAAA question goes out.

The clock a caller passes in starts when this resolver hands the name to c-ares (after any wait
for a free slot), so the reported DNS phase is the resolution and nothing else.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import fcntl
import socket
import termios
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import pycares

from ..api import ErrorCode
from .address_families import HostFamilies
from .failures import ProbeFailure

# At most this many names are being resolved at once.
DEFAULT_MAX_IN_FLIGHT = 1024
DEFAULT_CACHE_ENTRIES = 20_000
# A record's own TTL is honoured up to this: a moved service is seen within this many seconds.
DEFAULT_MAX_TTL = 300.0
# c-ares sends every query to a server through one UDP socket, so all the replies queue in one
# receive buffer: the default (208 KiB, some 200 replies) overflows when the process is off the
# CPU for a few tens of milliseconds at a thousand lookups a second, and the dropped replies
# come back as timeouts. The kernel caps this at net.core.rmem_max.
RECEIVE_BUFFER = 4 * 1024 * 1024

Address = tuple[int, tuple[object, ...]]  # (family, sockaddr) as the engine connects to it

_NOT_FOUND = {pycares.errno.ARES_ENOTFOUND, pycares.errno.ARES_ENONAME}
_TIMEOUT = {pycares.errno.ARES_ETIMEOUT}
_WHAT = {
    pycares.errno.ARES_ESERVFAIL: "the server failed (SERVFAIL)",
    pycares.errno.ARES_EREFUSED: "the server refused the query (REFUSED)",
    pycares.errno.ARES_ECONNREFUSED: "could not reach a DNS server (connection refused)",
}


# Datagrams read per wake-up at most, so that one flooded socket cannot hold the loop.
_DRAIN_MAX = 256
_PENDING = array.array("i", [0])


def _pending(fd: int) -> int:
    """Bytes of the next datagram waiting on a UDP socket (0: none)."""
    try:
        fcntl.ioctl(fd, termios.FIONREAD, _PENDING)
    except OSError:
        return 0
    return _PENDING[0]


@dataclasses.dataclass
class ResolutionClock:
    """When the resolution itself began and ended; waits for a slot are outside it."""

    started: float | None = None
    finished: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()

    def stop(self) -> None:
        if self.started is not None and self.finished is None:
            self.finished = time.perf_counter()

    def ms(self) -> float:
        if self.started is None:
            return 0.0
        end = self.finished if self.finished is not None else time.perf_counter()
        return round((end - self.started) * 1000, 3)


class AresFailure(Exception):
    """A c-ares lookup failed with this ARES_E* code."""

    def __init__(self, code: int) -> None:
        super().__init__(code, pycares.errno.strerror(code))
        self.code = code


class _Channel:
    """A c-ares channel whose sockets and timeouts the event loop drives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, options: dict[str, Any]) -> None:
        self.loop = loop
        self.readers: set[int] = set()
        self.writers: set[int] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.ares = pycares.Channel(
            sock_state_cb=self._sock_state,
            **{"socket_receive_buffer_size": RECEIVE_BUFFER, **options},
        )

    def _sock_state(self, fd: int, readable: bool, writable: bool) -> None:
        if readable and fd not in self.readers:
            self.loop.add_reader(fd, self._drain, fd)
            self.readers.add(fd)
        elif not readable and fd in self.readers:
            self.loop.remove_reader(fd)
            self.readers.discard(fd)
        if writable and fd not in self.writers:
            self.loop.add_writer(fd, self.ares.process_write_fd, fd)
            self.writers.add(fd)
        elif not writable and fd in self.writers:
            self.loop.remove_writer(fd)
            self.writers.discard(fd)

    def _drain(self, fd: int) -> None:
        """Read what the socket holds: c-ares takes one datagram per call, and a busy loop
        comes back to this socket only once per iteration, too seldom for thousands of replies
        a second (they would wait, then overflow the buffer and turn into timeouts)."""
        for _ in range(_DRAIN_MAX):
            self.ares.process_read_fd(fd)
            if fd not in self.readers or not _pending(fd):
                return

    def _arm(self) -> None:
        """Wake c-ares when its next query times out (a retry or a give-up is due)."""
        if not (self.readers or self.writers):
            return  # nothing in flight (a name from /etc/hosts is answered at once)
        # At most a second away: c-ares returns the cap itself when no query is pending.
        wait: float = self.ares.timeout(1.0)  # type: ignore[no-untyped-call]
        due = self.loop.time() + wait
        if self.timer is not None:
            if self.timer.when() <= due:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(due, self._expire)

    def _expire(self) -> None:
        self.timer = None
        self.ares.process_fd(pycares.ARES_SOCKET_BAD, pycares.ARES_SOCKET_BAD)
        self._arm()

    def getaddrinfo(self, host: str, family: int) -> asyncio.Future[pycares.AddrInfoResult]:
        future: asyncio.Future[pycares.AddrInfoResult] = self.loop.create_future()

        def done(result: pycares.AddrInfoResult | None, error: int | None) -> None:
            if future.done():
                return  # the probe gave up waiting
            if error:
                future.set_exception(AresFailure(error))
            else:
                future.set_result(result)  # type: ignore[arg-type]

        self.ares.getaddrinfo(
            host, None, family=socket.AddressFamily(family), type=socket.SOCK_STREAM, callback=done
        )
        self._arm()
        return future


@dataclasses.dataclass
class _Cached:
    expires: float  # time.monotonic()
    addresses: list[tuple[int, str]]


class NameResolver:
    """Resolves names for the probes of one process (one c-ares channel per event loop)."""

    def __init__(
        self,
        channel_options: dict[str, Any] | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        max_ttl: float = DEFAULT_MAX_TTL,
        host_families: HostFamilies | None = None,
    ) -> None:
        # Empty: c-ares reads /etc/resolv.conf, /etc/hosts and nsswitch.conf itself.
        self.channel_options = channel_options or {}
        # None: ask for what the monitor asks (both families for "any"), as before AI_ADDRCONFIG.
        self.host_families = host_families
        self.max_in_flight = max_in_flight
        self.cache_entries = cache_entries
        self.max_ttl = max_ttl
        self._cache: OrderedDict[tuple[str, int], _Cached] = OrderedDict()
        # A channel and a semaphore belong to one event loop; tests run several in turn.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: _Channel | None = None
        self._slots: asyncio.Semaphore | None = None

    @classmethod
    def configured(
        cls,
        nameservers: Sequence[str],
        *,
        port: int = 53,
        search: Sequence[str] = (),
        ndots: int = 1,
        attempt_timeout: float = 2.0,
        tries: int = 2,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        max_ttl: float = DEFAULT_MAX_TTL,
        host_families: HostFamilies | None = None,
    ) -> NameResolver:
        """A resolver configured explicitly (tests, benches) rather than from resolv.conf."""
        options: dict[str, Any] = {
            "servers": [f"{server}:{port}" for server in nameservers],
            "domains": list(search),
            "ndots": ndots,
            "timeout": attempt_timeout,
            "tries": tries,
            # No "lookups": pycares 5.2 lets the string it hands c-ares be freed (the order
            # then is garbage, and lookups fail at random); the system's order is files, dns.
        }
        return cls(
            options,
            max_in_flight=max_in_flight,
            cache_entries=cache_entries,
            max_ttl=max_ttl,
            host_families=host_families,
        )

    def _here(self) -> tuple[_Channel, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._channel is None or self._slots is None:
            self._loop = loop
            self._channel = _Channel(loop, self.channel_options)
            self._slots = asyncio.Semaphore(self.max_in_flight)
        return self._channel, self._slots

    def _cached(self, key: tuple[str, int]) -> list[tuple[int, str]] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry.addresses

    def _remember(self, key: tuple[str, int], addresses: list[tuple[int, str]], ttl: float) -> None:
        ttl = min(ttl, self.max_ttl)
        if ttl <= 0 or self.cache_entries <= 0:
            return
        self._cache[key] = _Cached(time.monotonic() + ttl, addresses)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    async def resolve(
        self, host: str, port: int, family: int, clock: ResolutionClock, lifetime: float
    ) -> list[Address]:
        """Addresses for ``host`` as ``(family, sockaddr)``, in getaddrinfo's order.

        Raises DNS_NOT_FOUND for NXDOMAIN or no address of the family, DNS_ERROR for SERVFAIL,
        REFUSED or an unreachable server, DNS_TIMEOUT when no answer came within ``lifetime``
        (the probe's deadline also ends the wait, with the same code).
        """
        narrowed = False
        if family == socket.AF_UNSPEC and self.host_families is not None:
            family = self.host_families.for_any()
            narrowed = family != socket.AF_UNSPEC
        key = (host.lower(), family)
        cached = self._cached(key)
        if cached is not None:
            clock.start()
            clock.stop()
            return [_sockaddr(fam, address, port) for fam, address in cached]
        channel, slots = self._here()
        async with slots:
            clock.start()
            try:
                async with asyncio.timeout(lifetime):
                    result = await channel.getaddrinfo(host, family)
            except TimeoutError:
                raise ProbeFailure(
                    ErrorCode.DNS_TIMEOUT, f"{host}: no answer within {lifetime:.3g}s"
                ) from None
            except AresFailure as exc:
                if narrowed and exc.code == pycares.errno.ARES_ENODATA:
                    raise _only_family(host, family) from None
                raise classify_ares_error(host, exc.code) from None
            finally:
                clock.stop()
        addresses: list[tuple[int, str]] = []
        ttl = self.max_ttl
        for node in result.nodes:
            if node.family in (socket.AF_INET, socket.AF_INET6):
                address = node.addr[0]
                text = address.decode() if isinstance(address, bytes) else str(address)
                if (node.family, text) not in addresses:
                    addresses.append((node.family, text))
                    ttl = min(ttl, node.ttl)
        if not addresses:
            if narrowed:
                raise _only_family(host, family)
            raise ProbeFailure(ErrorCode.DNS_NOT_FOUND, f"{host}: no address of the family asked")
        self._remember(key, addresses, ttl)
        return [_sockaddr(fam, address, port) for fam, address in addresses]


def _sockaddr(family: int, address: str, port: int) -> Address:
    if family == socket.AF_INET6:
        return family, (address, port, 0, 0)
    return family, (address, port)


def _only_family(host: str, family: int) -> ProbeFailure:
    name = "IPv4" if family == socket.AF_INET else "IPv6"
    return ProbeFailure(
        ErrorCode.DNS_NOT_FOUND,
        f"{host}: no {name} address, the only family this host has an address of",
    )


def classify_ares_error(host: str, code: int) -> ProbeFailure:
    if code == pycares.errno.ARES_ENODATA:
        return ProbeFailure(ErrorCode.DNS_NOT_FOUND, f"{host}: no address of the family asked")
    if code in _NOT_FOUND:
        return ProbeFailure(ErrorCode.DNS_NOT_FOUND, f"{host}: no such name (NXDOMAIN)")
    if code in _TIMEOUT:
        return ProbeFailure(ErrorCode.DNS_TIMEOUT, f"{host}: no answer from the DNS server")
    text = _WHAT.get(code) or str(pycares.errno.strerror(code))
    return ProbeFailure(ErrorCode.DNS_ERROR, f"{host}: {text}")


class _ProcessResolver:
    current: NameResolver | None = None


_PROCESS = _ProcessResolver()


def system_resolver() -> NameResolver:
    """A resolver configured from the system's files, asking only for the families the host
    has addresses of when a monitor asks for any (AI_ADDRCONFIG)."""
    return NameResolver(host_families=HostFamilies())


def process_resolver() -> NameResolver:
    """The process's resolver, configured from the system's files on first use."""
    if _PROCESS.current is None:
        _PROCESS.current = system_resolver()
    return _PROCESS.current


def use_resolver(resolver: NameResolver | None) -> None:
    """Replace the process's resolver (None: the system's configuration again)."""
    _PROCESS.current = resolver
