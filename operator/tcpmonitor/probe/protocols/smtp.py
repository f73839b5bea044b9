"""SMTP (RFC 5321): greeting, EHLO, STARTTLS (RFC 3207) when asked, EHLO again, QUIT.

EHLO is the proof that an SMTP engine answers (a greeting is a fixed string any proxy can
send); it names the client by its address literal, which every server accepts without DNS.
"""

from __future__ import annotations

from ..session import Session
from .numeric_replies import read_reply


def _address_literal(session: Session) -> str:
    local = session.local_address
    if not local:
        return "[127.0.0.1]"
    host = str(local[0])
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


async def _ehlo(session: Session, client: str) -> tuple[str, ...]:
    session.send(f"EHLO {client}\r\n".encode())
    reply = await read_reply(session, "an SMTP reply to EHLO")
    if reply.code != 250:
        raise session.protocol_error("250 in reply to EHLO", reply.raw)
    return reply.lines


async def converse(session: Session, start_tls: bool) -> None:
    greeting = await read_reply(session, "an SMTP greeting (220)")
    if greeting.code != 220:
        raise session.protocol_error("an SMTP greeting (220)", greeting.raw)
    session.detail = greeting.text
    client = _address_literal(session)
    extensions = await _ehlo(session, client)
    if start_tls:
        if not any(line.upper().split()[:1] == ["STARTTLS"] for line in extensions[1:]):
            raise session.starttls_refused("the SMTP server does not offer STARTTLS in EHLO")
        session.send(b"STARTTLS\r\n")
        reply = await read_reply(session, "an SMTP reply to STARTTLS")
        if reply.code != 220:
            raise session.starttls_refused(f"STARTTLS refused: {reply.code} {reply.text}")
        await session.start_tls()
        # RFC 3207: the client must forget what it learnt before the upgrade and ask again.
        await _ehlo(session, client)
    session.send(b"QUIT\r\n")
