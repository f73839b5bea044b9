"""Redis (RESP): PING, then the server version from ``INFO server`` when it answers without
authentication. An error reply to PING (``-NOAUTH``, ``-DENIED``) still proves Redis answers.
"""

from __future__ import annotations

import re

from ..session import Session

_VERSION = re.compile(rb"^redis_version:([^\r\n]+)", re.MULTILINE)


def _bulk_framer(data: bytes) -> int | None:
    """One RESP reply: a line (+, -, :) or a bulk string ($len, then len bytes and CRLF)."""
    end = data.find(b"\r\n")
    if end < 0:
        return None
    if not data.startswith(b"$"):
        return end + 2
    try:
        length = int(data[1:end])
    except ValueError:
        return end + 2
    total = end + 2 + max(length, 0) + (2 if length >= 0 else 0)
    return total if len(data) >= total else None


async def converse(session: Session, start_tls: bool) -> None:
    del start_tls  # Redis has TLS only on a TLS port; validation refuses startTLS
    session.send(b"PING\r\n")
    reply = await session.read_line("a Redis reply to PING (+PONG)")
    text = reply.decode("latin-1").rstrip("\r\n")
    if text.startswith("-") and len(text) > 1:
        session.detail = text[1:]  # NOAUTH Authentication required.
        return
    if text != "+PONG":
        raise session.protocol_error("a Redis reply to PING (+PONG)", reply)
    session.detail = "PONG"
    session.send(b"INFO server\r\n")
    info = await session.read(_bulk_framer, "a Redis reply to INFO server")
    found = _VERSION.search(info)
    if found:
        session.detail = f"PONG, redis_version {found.group(1).decode('latin-1')}"
