"""The built-in protocols against scripted loopback servers: what each proves, what it reports
(result.protocol), and how a peer that speaks something else fails (PROTOCOL_ERROR)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tcpmonitor.api import ErrorCode, ProbeResult, Protocol, Verdict
from tcpmonitor.probe import ProbeMaterial
from tcpmonitor.probe.assertions import CREDIT_PER_BYTE, FREE_CHECKED_BYTES
from tcpmonitor.probe.protocols import PROTOCOLS
from tcpmonitor.probe.session import Framer, Session

from ..probing import probe
from ..servers import Handler, reset_after, serve
from . import protocol_servers as servers


def run(
    handler: Handler | servers.BlockingScript,
    material: ProbeMaterial | None = None,
    **spec: Any,
) -> ProbeResult:
    async def scenario() -> ProbeResult:
        if isinstance(handler, servers.BlockingScript):
            with servers.serve_blocking(handler) as port:
                return await probe(port, material, **spec)
        async with serve(handler) as port:
            return await probe(port, material, **spec)

    return asyncio.run(scenario())


PLAIN: list[tuple[Protocol, Handler, str]] = [
    (Protocol.SMTP, servers.smtp(), "mail.test ESMTP Postfix (Debian/GNU)"),
    (Protocol.IMAP, servers.imap(), "Dovecot (Debian) ready."),
    (Protocol.POP3, servers.pop3(), "Dovecot (Debian) ready."),
    (Protocol.FTP, servers.ftp(), "Welcome"),
    (Protocol.SSH, servers.ssh(), "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
    (Protocol.POSTGRESQL, servers.postgresql(), "authentication request: SASL"),
    (Protocol.MYSQL, servers.mysql(), "10.11.6-MariaDB-0+deb12u1"),
    (Protocol.REDIS, servers.redis(), "PONG, redis_version 7.0.15"),
    (Protocol.MEMCACHED, servers.memcached(), "1.6.18"),
    (Protocol.MONGODB, servers.mongodb(), "version 7.0.14, maxWireVersion 21"),
    (Protocol.LDAP, servers.ldap(), "OpenLDAP, LDAP versions 3"),
    # Without TLS the stream is addressed to spec.host.
    (
        Protocol.XMPP,
        servers.xmpp(domain="127.0.0.1"),
        "stream from example.com, features: starttls",
    ),
]


def test_every_protocol_has_a_module_and_a_test() -> None:
    assert set(PROTOCOLS) == set(Protocol) == {p for p, _, _ in PLAIN}


@pytest.mark.parametrize(("protocol", "handler", "detail"), PLAIN, ids=[p for p, _, _ in PLAIN])
def test_protocol_answers_and_reports_what_it_learnt(
    protocol: Protocol, handler: Handler, detail: str
) -> None:
    result = run(handler, protocol=protocol.value)
    assert result.state is Verdict.UP, result.error
    assert result.error is None
    assert result.protocol is not None
    assert result.protocol.name == protocol.value
    assert result.protocol.detail == detail
    assert result.timings.data is not None
    assert result.response is not None and result.response.bytes > 0
    assert result.to_json_dict()["protocol"] == {"name": protocol.value, "detail": detail}


@pytest.mark.parametrize("protocol", list(Protocol))
def test_a_peer_speaking_something_else_is_a_protocol_error(protocol: Protocol) -> None:
    result = run(servers.not_the_protocol(), protocol=protocol.value, timeout="1s")
    assert result.state is Verdict.DOWN
    assert result.error is not None
    assert result.error.code == ErrorCode.PROTOCOL_ERROR, result.error
    assert "HTTP/1.1 400 Bad Request" in result.error.message
    assert result.protocol is not None and result.protocol.name == protocol.value


@pytest.mark.parametrize(
    ("handler", "detail"),
    [
        (servers.redis(password=True), "NOAUTH Authentication required."),
        (
            servers.postgresql(trust=True),
            "PostgreSQL 16.4 (Debian 16.4-1) (trust authentication)",
        ),
    ],
    ids=["redis-noauth", "postgresql-trust"],
)
def test_answers_short_of_a_login_still_prove_the_service(handler: Handler, detail: str) -> None:
    protocol = "Redis" if "NOAUTH" in detail else "PostgreSQL"
    result = run(handler, protocol=protocol)
    assert result.state is Verdict.UP, result.error
    assert result.protocol is not None and result.protocol.detail == detail


def test_postgresql_refusing_the_client_host_still_answers() -> None:
    result = run(servers.postgresql_refusing_user(), protocol="PostgreSQL")
    assert result.state is Verdict.UP, result.error
    assert result.protocol is not None
    assert result.protocol.detail == 'FATAL 28000: no pg_hba.conf entry for host "127.0.0.1"'


def test_xmpp_stream_error_is_down_naming_the_condition() -> None:
    result = run(servers.xmpp(domain="chat.example.org"), protocol="XMPP")
    assert result.error is not None and result.error.code == ErrorCode.PROTOCOL_ERROR
    assert "stream error host-unknown" in result.error.message


def test_silence_is_a_read_timeout_naming_what_was_awaited() -> None:
    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)

    result = run(silent, protocol="SMTP", timeout="300ms")
    assert result.error is not None and result.error.code == ErrorCode.READ_TIMEOUT
    assert "expected an SMTP greeting (220) within" in result.error.message
    assert result.timings.total is not None and result.timings.total < 1000


def test_a_close_mid_reply_quotes_what_was_said() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220-first line of a long greeting\r\n")
        await writer.drain()

    result = run(cut, protocol="SMTP")
    assert result.error is not None and result.error.code == ErrorCode.PROTOCOL_ERROR
    assert "first line of a long greeting" in result.error.message
    assert "closed" in result.error.message


def test_hostile_detail_is_escaped_and_bounded() -> None:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-\x1b[31mevil\xe2\x80\xae" + b"x" * 5000 + b"\r\n")
        await writer.drain()
        await reader.read(100)

    result = run(hostile, protocol="SSH")
    assert result.protocol is not None and result.protocol.detail is not None
    assert "\x1b" not in result.protocol.detail and "\\x1b" in result.protocol.detail
    assert len(result.protocol.detail) <= 256


def test_a_trickled_endless_reply_costs_linear_looking() -> None:
    """A server that sends SMTP continuation lines one per packet and never ends the reply:
    the looking for the reply's end stays within the credit, not quadratic in the lines."""
    looked: list[int] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3000):
            writer.write(b"220-still greeting\r\n")
            await writer.drain()
            await asyncio.sleep(0)
        await asyncio.sleep(2)

    original = Session._look

    def counting(self: Session, framer: Framer) -> bytes | None:
        found = original(self, framer)
        looked.append(self.looked_at_bytes)
        return found

    Session._look = counting  # type: ignore[method-assign]
    try:
        result = run(trickle, protocol="SMTP", timeout="1s")
    finally:
        Session._look = original  # type: ignore[method-assign]
    assert result.error is not None and result.error.code == ErrorCode.PROTOCOL_ERROR
    received = result.response.bytes if result.response else 0
    assert received == 3000 * 20
    assert looked[-1] <= FREE_CHECKED_BYTES + CREDIT_PER_BYTE * received + received
    assert len(looked) > 10  # it did keep looking while the bytes paid for it


def test_a_reset_mid_dialog_is_connection_reset_naming_what_was_awaited() -> None:
    result = run(reset_after(b"220 mail.test ESMTP\r\n", delay=0.1), protocol="SMTP")
    assert result.error is not None and result.error.code == ErrorCode.CONNECTION_RESET
    assert "expected an SMTP reply to EHLO, but Connection reset by peer" in result.error.message
    assert result.protocol is not None and result.protocol.detail == "mail.test ESMTP"
