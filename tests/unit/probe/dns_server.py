"""A tiny authoritative DNS server on 127.0.0.1 for resolver tests: fixed delay, scripted rcodes.

Names in ``records`` answer with their addresses (A or AAAA, by the address); names starting
with ``servfail.``, ``refused.`` or ``silent.`` answer SERVFAIL, REFUSED or nothing at all;
anything else is NXDOMAIN. Negative answers carry an SOA, so resolvers cache them for ``ttl``.
Every question asked is kept, in order. The wire format is written by hand (RFC 1035), enough
for one question and its answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

A, AAAA, SOA, IN = 1, 28, 6, 1
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
_TYPE_NAMES = {A: "A", AAAA: "AAAA"}
_ZONE = b"\x04test\x00"
_SOA_RDATA = (
    b"\x02ns" + _ZONE + b"\x0ahostmaster" + _ZONE + struct.pack("!IIIII", 1, 60, 60, 60, 60)
)


def _question(wire: bytes) -> tuple[str, int, int]:
    """The query's name, type and the offset just past the question."""
    labels, offset = [], 12
    while wire[offset]:
        length = wire[offset]
        labels.append(wire[offset + 1 : offset + 1 + length].decode("ascii"))
        offset += 1 + length
    qtype = struct.unpack_from("!H", wire, offset + 1)[0]
    return ".".join(labels).lower(), qtype, offset + 5


@dataclasses.dataclass
class DnsServer:
    records: dict[str, list[str]]
    delay: float = 0.0
    ttl: int = 60
    port: int = 0
    questions: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def answer(self, wire: bytes) -> bytes | None:
        name, qtype, end = _question(wire)
        self.questions.append((name, _TYPE_NAMES.get(qtype, str(qtype))))
        if name.startswith("silent."):
            return None
        answers: list[bytes] = []
        rcode = NOERROR
        if name.startswith("servfail."):
            rcode = SERVFAIL
        elif name.startswith("refused."):
            rcode = REFUSED
        elif name in self.records:
            family = socket.AF_INET6 if qtype == AAAA else socket.AF_INET
            for address in self.records[name]:
                if (":" in address) == (family == socket.AF_INET6) and qtype in (A, AAAA):
                    rdata = socket.inet_pton(family, address)
                    # The owner is a pointer to the question's name (offset 12).
                    answers.append(
                        struct.pack("!HHHIH", 0xC00C, qtype, IN, self.ttl, len(rdata)) + rdata
                    )
        else:
            rcode = NXDOMAIN
        authority = []
        if not answers and rcode in (NOERROR, NXDOMAIN):
            authority.append(
                _ZONE + struct.pack("!HHIH", SOA, IN, self.ttl, len(_SOA_RDATA)) + _SOA_RDATA
            )
        query_id, query_flags = struct.unpack_from("!HH", wire)
        flags = 0x8000 | 0x0400 | (query_flags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
        header = struct.pack("!HHHHHH", query_id, flags, 1, len(answers), len(authority), 0)
        return header + wire[12:end] + b"".join(answers) + b"".join(authority)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.answer(data)
        if reply is not None and self.transport is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(self.server.delay, self.transport.sendto, reply, addr)


@asynccontextmanager
async def dns_server(
    records: dict[str, list[str]], *, delay: float = 0.0, ttl: int = 60
) -> AsyncIterator[DnsServer]:
    server = DnsServer(records, delay=delay, ttl=ttl)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Protocol(server), local_addr=("127.0.0.1", 0)
    )
    server.port = transport.get_extra_info("sockname")[1]
    try:
        yield server
    finally:
        transport.close()
