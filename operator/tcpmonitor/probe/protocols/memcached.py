"""Memcached (text protocol): ``version`` answered by ``VERSION x.y.z``."""

from __future__ import annotations

from ..session import Session


async def converse(session: Session, start_tls: bool) -> None:
    del start_tls  # memcached has TLS only on a TLS port; validation refuses startTLS
    session.send(b"version\r\n")
    reply = await session.read_line("a memcached reply to version (VERSION ...)")
    if not reply.startswith(b"VERSION "):
        raise session.protocol_error("a memcached reply to version (VERSION ...)", reply)
    session.detail = reply[len(b"VERSION ") :].decode("latin-1").strip()
