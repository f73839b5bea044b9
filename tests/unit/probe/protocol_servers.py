"""Small scripted servers speaking just enough of each protocol for the probe's exchange.

Each handler plays one side of a real session, byte for byte as the daemons send it, with the
TLS upgrade done on the same connection (``StreamWriter.start_tls``). ``tls`` is the server
context for the upgrade; ``offer`` False leaves the upgrade out of what the server advertises,
``accept`` False refuses it when asked.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from tcpmonitor.probe.protocols import ber
from tcpmonitor.probe.protocols.bson import encode

from ..servers import Handler

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


async def _say(writer: Writer, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _upgrade(writer: Writer, tls: ssl.SSLContext | None) -> None:
    assert tls is not None, "the scripted server was asked to upgrade without a context"
    await writer.start_tls(tls)


async def _linger(reader: Reader) -> None:
    """Until the client closes (or one second), as a server does after QUIT."""
    try:
        async with asyncio.timeout(1):
            while await reader.read(4096):
                pass
    except TimeoutError:
        pass


def smtp(tls: ssl.SSLContext | None = None, *, offer: bool = True, accept: bool = True) -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        await _say(writer, b"220 mail.test ESMTP Postfix (Debian/GNU)\r\n")
        assert (await reader.readline()).startswith(b"EHLO [127.0.0.1]")
        offered = b"250-STARTTLS\r\n" if offer else b""
        await _say(writer, b"250-mail.test\r\n250-PIPELINING\r\n" + offered + b"250 8BITMIME\r\n")
        line = await reader.readline()
        if line == b"STARTTLS\r\n":
            if not accept:
                await _say(writer, b"454 4.7.0 TLS not available due to local problem\r\n")
                await _linger(reader)
                return
            await _say(writer, b"220 2.0.0 Ready to start TLS\r\n")
            await _upgrade(writer, tls)
            assert (await reader.readline()).startswith(b"EHLO ")
            await _say(writer, b"250-mail.test\r\n250 8BITMIME\r\n")
            line = await reader.readline()
        assert line == b"QUIT\r\n", line
        await _say(writer, b"221 2.0.0 Bye\r\n")

    return handler


def imap(tls: ssl.SSLContext | None = None, *, offer: bool = True, accept: bool = True) -> Handler:
    capabilities = b"IMAP4rev1 SASL-IR LOGIN-REFERRALS" + (b" STARTTLS" if offer else b"")

    async def handler(reader: Reader, writer: Writer) -> None:
        await _say(writer, b"* OK [CAPABILITY " + capabilities + b"] Dovecot (Debian) ready.\r\n")
        while line := await reader.readline():
            tag, command = line.split(b" ", 1)
            if command == b"STARTTLS\r\n":
                if not accept:
                    await _say(writer, tag + b" NO TLS support isn't enabled.\r\n")
                    continue
                await _say(writer, tag + b" OK Begin TLS negotiation now.\r\n")
                await _upgrade(writer, tls)
            elif command == b"CAPABILITY\r\n":
                await _say(writer, b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK Done.\r\n")
            elif command == b"LOGOUT\r\n":
                await _say(writer, b"* BYE Logging out\r\n" + tag + b" OK Done.\r\n")
                return

    return handler


def pop3(tls: ssl.SSLContext | None = None, *, offer: bool = True, accept: bool = True) -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        await _say(writer, b"+OK Dovecot (Debian) ready.\r\n")
        while line := await reader.readline():
            if line == b"CAPA\r\n":
                stls = b"STLS\r\n" if offer else b""
                await _say(writer, b"+OK\r\nCAPA\r\nTOP\r\n" + stls + b"UIDL\r\n.\r\n")
            elif line == b"STLS\r\n":
                if not accept:
                    await _say(writer, b"-ERR TLS support isn't enabled.\r\n")
                    continue
                await _say(writer, b"+OK Begin TLS negotiation now.\r\n")
                await _upgrade(writer, tls)
            elif line == b"QUIT\r\n":
                await _say(writer, b"+OK Logging out.\r\n")
                return

    return handler


def ftp(tls: ssl.SSLContext | None = None, *, offer: bool = True, accept: bool = True) -> Handler:
    del offer  # FTP has no advertisement: the server answers AUTH TLS or not

    async def handler(reader: Reader, writer: Writer) -> None:
        await _say(writer, b"220-Welcome\r\n220 (vsFTPd 3.0.3)\r\n")
        while line := await reader.readline():
            if line == b"AUTH TLS\r\n":
                if not accept:
                    await _say(writer, b"530 Please login with USER and PASS.\r\n")
                    continue
                await _say(writer, b"234 Proceed with negotiation.\r\n")
                await _upgrade(writer, tls)
            elif line == b"NOOP\r\n":
                await _say(writer, b"200 NOOP ok.\r\n")
            elif line == b"QUIT\r\n":
                await _say(writer, b"221 Goodbye.\r\n")
                return

    return handler


def ssh() -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        await _say(writer, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
        assert (await reader.readline()).startswith(b"SSH-2.0-")
        await _linger(reader)

    return handler


def postgresql(
    tls: ssl.SSLContext | None = None,
    *,
    offer: bool = True,
    accept: bool = True,
    trust: bool = False,
) -> Handler:
    del accept  # PostgreSQL's only refusal is not offering ('N')

    async def handler(reader: Reader, writer: Writer) -> None:
        first = await reader.readexactly(8)
        if first == struct.pack("!II", 8, 80877103):
            if not offer:
                await _say(writer, b"N")
                await _linger(reader)
                return
            await _say(writer, b"S")
            await _upgrade(writer, tls)
            first = await reader.readexactly(8)
        length = struct.unpack("!I", first[:4])[0]
        body = first[4:] + await reader.readexactly(length - 8)
        assert body[:4] == struct.pack("!I", 196608) and b"user\0tcpmonitor\0" in body
        if trust:
            version = b"server_version\x0016.4 (Debian 16.4-1)\0"
            status = b"S" + struct.pack("!I", 4 + len(version)) + version
            await _say(writer, b"R" + struct.pack("!II", 8, 0) + status)
        else:
            sasl = b"SCRAM-SHA-256\0\0"
            await _say(writer, b"R" + struct.pack("!II", 8 + len(sasl), 10) + sasl)
        await _linger(reader)

    return handler


def postgresql_refusing_user() -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        await reader.readexactly(length - 4)
        fields = b'SFATAL\0C28000\0Mno pg_hba.conf entry for host "127.0.0.1"\0\0'
        await _say(writer, b"E" + struct.pack("!I", 4 + len(fields)) + fields)

    return handler


def mysql_greeting(ssl_capable: bool) -> bytes:
    capabilities = 0xFFFF if ssl_capable else 0xFFFF & ~0x0800  # 0x0800: CLIENT_SSL
    body = (
        b"\x0a"
        + b"10.11.6-MariaDB-0+deb12u1\0"
        + struct.pack("<I", 42)
        + b"abcdefgh\0"
        + struct.pack("<HBHH", capabilities, 45, 2, 0x81BF)
        + b"\x15"
        + bytes(10)
        + b"ijklmnopqrst\0mysql_native_password\0"
    )
    return len(body).to_bytes(3, "little") + b"\0" + body


@dataclass(frozen=True)
class BlockingScript:
    """A server side run on a blocking socket in a thread, for protocols where the client
    starts TLS without waiting for an answer (MySQL): asyncio's server streams would have
    read the ClientHello into their buffer along with the request before it."""

    script: Callable[[socket.socket], None]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = sock.recv(size, socket.MSG_WAITALL)
    if len(data) != size:
        raise ConnectionError("closed early")
    return data


@contextmanager
def serve_blocking(server: BlockingScript) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(3)
            with conn, suppress(OSError, ssl.SSLError, AssertionError):
                server.script(conn)

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def mysql(
    tls: ssl.SSLContext | None = None, *, offer: bool = True, accept: bool = True
) -> Handler | BlockingScript:
    del accept
    if tls is None:

        async def greet_only(reader: Reader, writer: Writer) -> None:
            await _say(writer, mysql_greeting(offer))
            await _linger(reader)

        return greet_only

    def script(sock: socket.socket) -> None:
        sock.sendall(mysql_greeting(offer))
        header = _recv_exactly(sock, 4)
        length = int.from_bytes(header[:3], "little")
        body = _recv_exactly(sock, length)
        assert header[3] == 1 and length == 32
        assert struct.unpack("<I", body[:4])[0] & 0x0800  # CLIENT_SSL
        with tls.wrap_socket(sock, server_side=True) as secure:
            secure.recv(1)  # until the client closes

    return BlockingScript(script)


def redis(*, password: bool = False) -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        assert await reader.readline() == b"PING\r\n"
        if password:
            await _say(writer, b"-NOAUTH Authentication required.\r\n")
            await _linger(reader)
            return
        await _say(writer, b"+PONG\r\n")
        assert await reader.readline() == b"INFO server\r\n"
        info = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
        await _say(writer, b"$%d\r\n%s\r\n" % (len(info), info))
        await _linger(reader)

    return handler


def memcached() -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        assert await reader.readline() == b"version\r\n"
        await _say(writer, b"VERSION 1.6.18\r\n")
        await _linger(reader)

    return handler


def _op_msg_reply(request: bytes, document: dict[str, str | int]) -> bytes:
    request_id = struct.unpack("<i", request[4:8])[0]
    body = struct.pack("<I", 0) + b"\0" + encode(document)
    return struct.pack("<iiii", 16 + len(body), 7, request_id, 2013) + body


def mongodb() -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        for reply in (
            {"isWritablePrimary": 1, "maxWireVersion": 21, "ok": 1},
            {"version": "7.0.14", "ok": 1},
        ):
            length = struct.unpack("<i", await reader.readexactly(4))[0]
            request = struct.pack("<i", length) + await reader.readexactly(length - 4)
            assert struct.unpack("<i", request[12:16])[0] == 2013
            await _say(writer, _op_msg_reply(request, reply))
        await _linger(reader)

    return handler


async def _ldap_message(reader: Reader) -> tuple[int, int]:
    """(message id, operation tag) of the next LDAPMessage."""
    head = await reader.readexactly(2)
    extra = head[1] & 0x7F if head[1] & 0x80 else 0
    raw = head + await reader.readexactly(extra)
    found = ber.header(raw)
    assert found is not None
    _, _, length = found
    body = await reader.readexactly(length)
    parts = list(ber.children(body))
    return int.from_bytes(parts[0][1], "big"), parts[1][0]


def _ldap_result(message_id: int, tag: int, code: int, text: bytes = b"") -> bytes:
    result = (
        ber.integer(code, ber.ENUMERATED)
        + ber.element(ber.OCTET_STRING, b"")
        + ber.element(ber.OCTET_STRING, text)
    )
    return ber.element(ber.SEQUENCE, ber.integer(message_id) + ber.element(tag, result))


def _ldap_entry(message_id: int) -> bytes:
    def attribute(name: bytes, *values: bytes) -> bytes:
        vals = b"".join(ber.element(ber.OCTET_STRING, v) for v in values)
        return ber.element(
            ber.SEQUENCE, ber.element(ber.OCTET_STRING, name) + ber.element(ber.SET, vals)
        )

    attributes = attribute(b"vendorName", b"OpenLDAP") + attribute(b"supportedLDAPVersion", b"3")
    entry = ber.element(ber.OCTET_STRING, b"") + ber.element(ber.SEQUENCE, attributes)
    return ber.element(ber.SEQUENCE, ber.integer(message_id) + ber.element(0x64, entry))


def ldap(tls: ssl.SSLContext | None = None, *, offer: bool = True, accept: bool = True) -> Handler:
    del accept

    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            message_id, tag = await _ldap_message(reader)
            if tag == 0x77:  # ExtendedRequest: StartTLS
                if not offer:
                    await _say(writer, _ldap_result(message_id, 0x78, 2, b"unsupported extop"))
                    continue
                await _say(writer, _ldap_result(message_id, 0x78, 0))
                await _upgrade(writer, tls)
            elif tag == 0x63:  # SearchRequest
                await _say(writer, _ldap_entry(message_id) + _ldap_result(message_id, 0x65, 0))
            else:
                return

    return handler


_XMPP_OPEN = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='s1' version='1.0'>"
)


def xmpp(
    tls: ssl.SSLContext | None = None,
    *,
    offer: bool = True,
    accept: bool = True,
    domain: str = "example.com",
) -> Handler:
    async def handler(reader: Reader, writer: Writer) -> None:
        opening = await reader.readuntil(b"'http://etherx.jabber.org/streams'>")
        if f"to='{domain}'".encode() not in opening:
            host_unknown = b"<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            await _say(writer, _XMPP_OPEN + b"<stream:error>" + host_unknown + b"</stream:error>")
            return
        starttls = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
        features = starttls if offer else b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
        await _say(writer, _XMPP_OPEN + b"<stream:features>" + features + b"</stream:features>")
        request = await reader.readuntil(b"/>")
        if b"starttls" not in request:
            return
        if not accept:
            await _say(writer, b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            return
        await _say(writer, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await _upgrade(writer, tls)
        await reader.readuntil(b"'http://etherx.jabber.org/streams'>")
        mechanisms = (
            b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            b"<mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
        )
        await _say(writer, _XMPP_OPEN + b"<stream:features>" + mechanisms + b"</stream:features>")
        await _linger(reader)

    return handler


def not_the_protocol() -> Handler:
    """A web server on the port: it answers anything with an HTTP error."""

    async def handler(reader: Reader, writer: Writer) -> None:
        await _say(writer, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await _linger(reader)

    return handler
