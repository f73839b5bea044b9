"""MySQL and MariaDB (client/server protocol): the server's initial handshake packet, whose
version string is the detail; with STARTTLS, an SSLRequest packet and the TLS handshake.

A server that refuses the client host answers with an error packet (0xFF) instead: MySQL
answering, shown as the detail.
"""

from __future__ import annotations

import struct

from ..session import Session

_CLIENT_LONG_PASSWORD = 0x1
_CLIENT_PROTOCOL_41 = 0x200
_CLIENT_SSL = 0x800
_CLIENT_SECURE_CONNECTION = 0x8000
_MAX_PACKET = 16 * 1024 * 1024
_UTF8MB4 = 45
# The initial handshake is under 200 bytes; more is not a MySQL greeting.
_MAX_GREETING = 4096


def _packet_framer(data: bytes) -> int | None:
    if len(data) < 4:
        return None
    length = int.from_bytes(data[:3], "little")
    if length > _MAX_GREETING:
        return len(data)  # not a MySQL greeting: hand it over whole, to be refused
    return 4 + length if len(data) >= 4 + length else None


def _ssl_request(sequence: int) -> bytes:
    flags = _CLIENT_LONG_PASSWORD | _CLIENT_PROTOCOL_41 | _CLIENT_SSL | _CLIENT_SECURE_CONNECTION
    body = struct.pack("<IIB", flags, _MAX_PACKET, _UTF8MB4) + bytes(23)
    return len(body).to_bytes(3, "little") + bytes([sequence]) + body


async def converse(session: Session, start_tls: bool) -> None:
    expected = "a MySQL initial handshake packet"
    packet = await session.read(_packet_framer, expected)
    sequence, body = packet[3], packet[4:]
    if len(packet) < 5 or int.from_bytes(packet[:3], "little") != len(body):
        raise session.protocol_error(expected, packet)
    if body[0] == 0xFF and len(body) >= 3:
        code = struct.unpack("<H", body[1:3])[0]
        text = body[3:]
        if text.startswith(b"#"):
            text = text[6:]  # '#' and the five-character SQL state
        session.detail = f"error {code}: {text.decode('utf-8', 'replace')}"
        if start_tls:
            raise session.starttls_refused(f"the MySQL server refused the client: {code}")
        return
    version_end = body.find(b"\0", 1)
    if body[0] != 10 or version_end < 0:
        raise session.protocol_error(expected + " (protocol 10)", packet)
    session.detail = body[1:version_end].decode("latin-1")
    if not start_tls:
        return
    # After the version: connection id (4), auth data (8), filler (1), capability flags (2).
    flags_at = version_end + 1 + 4 + 8 + 1
    if len(body) < flags_at + 2:
        raise session.protocol_error(expected + " with capability flags", packet)
    capabilities = struct.unpack("<H", body[flags_at : flags_at + 2])[0]
    if not capabilities & _CLIENT_SSL:
        raise session.starttls_refused("the MySQL server does not offer SSL (CLIENT_SSL)")
    session.send(_ssl_request((sequence + 1) & 0xFF))
    await session.start_tls()
