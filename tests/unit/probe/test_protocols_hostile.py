"""Whatever a target sends, a protocol check ends in a result that fits the status: every
decoder (BSON, BER, MySQL and PostgreSQL packets, RESP, XML markers) meets arbitrary bytes."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpmonitor.api import ProbeResult, Protocol, Verdict
from tcpmonitor.probe.protocols import PROTOCOLS
from tcpmonitor.probe.session import Session

from ...hostile.bounds import assert_result_fits_the_status
from ..probing import probe
from ..servers import serve

# Prefixes that get past each protocol's first check, so the bytes after them reach the
# decoders instead of being refused at the first byte.
PREFIXES: dict[Protocol, list[bytes]] = {
    Protocol.SMTP: [b"220 ok\r\n", b"220-"],
    Protocol.IMAP: [b"* OK ", b"* OK [CAPABILITY "],
    Protocol.POP3: [b"+OK "],
    Protocol.FTP: [b"220 "],
    Protocol.SSH: [b"SSH-2.0-"],
    Protocol.POSTGRESQL: [b"R", b"E", b"R\x00\x00\x00\x08\x00\x00\x00\x00"],
    Protocol.MYSQL: [b"\x20\x00\x00\x00\x0a", b"\x10\x00\x00\x00\xff"],
    Protocol.REDIS: [b"+PONG\r\n$", b"-"],
    Protocol.MEMCACHED: [b"VERSION "],
    Protocol.MONGODB: [struct.pack("<iiii", 40, 1, 1, 2013) + b"\0\0\0\0\0"],
    Protocol.LDAP: [b"\x30\x0c\x02\x01\x02\x64", b"\x30\x84", b"\x30\x07\x02\x01\x02\x65"],
    Protocol.XMPP: [b"<stream:stream from='", b"<stream:features><"],
}


def run(protocol: Protocol, reply: bytes) -> ProbeResult:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()
        await reader.read(1)  # answer whatever the probe sends first, then close

    async def scenario() -> ProbeResult:
        async with serve(handler) as port:
            return await probe(port, protocol=protocol.value, timeout="100ms")

    return asyncio.run(scenario())


@pytest.mark.parametrize("protocol", list(Protocol))
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_arbitrary_replies_end_in_a_bounded_result(protocol: Protocol, data: st.DataObject) -> None:
    prefix = data.draw(st.sampled_from([b"", *PREFIXES[protocol]]))
    tail = data.draw(st.binary(max_size=300))
    result = run(protocol, prefix + tail)
    assert isinstance(result, ProbeResult)
    assert_result_fits_the_status(result)
    if result.state is not Verdict.DOWN:
        assert result.protocol is not None


def test_a_decoder_that_trips_is_a_protocol_error_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine's promise (never raise for what the target does) holds even where a
    protocol module misses a case: the reply is quoted as not understood."""

    async def trips(session: Session, start_tls: bool) -> None:
        await session.read_line("a line")
        raise IndexError("index out of range")

    monkeypatch.setitem(PROTOCOLS, Protocol.SSH, trips)
    result = run(Protocol.SSH, b"SSH-2.0-odd\r\n")
    assert result.error is not None and result.error.code == "PROTOCOL_ERROR"
    assert result.error.message.endswith(
        ': reply not understood (IndexError): "SSH-2.0-odd\\r\\n"'
    ), result.error.message
