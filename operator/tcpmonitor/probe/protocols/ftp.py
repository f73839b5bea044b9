"""FTP (RFC 959): the 220 greeting; with STARTTLS, ``AUTH TLS`` (RFC 4217) and then a command
over the protected channel to prove it carries FTP."""

from __future__ import annotations

from ..session import Session
from .numeric_replies import read_reply


async def converse(session: Session, start_tls: bool) -> None:
    greeting = await read_reply(session, "an FTP greeting (220)")
    if greeting.code != 220:
        raise session.protocol_error("an FTP greeting (220)", greeting.raw)
    session.detail = greeting.text
    if start_tls:
        session.send(b"AUTH TLS\r\n")
        reply = await read_reply(session, "an FTP reply to AUTH TLS")
        if reply.code != 234:
            raise session.starttls_refused(f"AUTH TLS refused: {reply.code} {reply.text}")
        await session.start_tls()
        # Any well-formed reply proves FTP on the far side of the upgrade; servers differ on
        # what they allow before login (NOOP is 200 on most, 530 on some).
        session.send(b"NOOP\r\n")
        await read_reply(session, "an FTP reply to NOOP over TLS")
    session.send(b"QUIT\r\n")
