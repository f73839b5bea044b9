"""POP3 (RFC 1939): the ``+OK`` greeting; with STARTTLS, CAPA and STLS (RFC 2595), then CAPA
over TLS, then QUIT."""

from __future__ import annotations

from ..session import Session


def _multiline_framer(data: bytes) -> int | None:
    """A one-line -ERR, or +OK and lines up to the terminating ``.``."""
    first = data.find(b"\n")
    if first < 0:
        return None
    if not data.startswith(b"+OK"):
        return first + 1
    if data[first + 1 :].startswith(b".\r\n") or data[first + 1 :].startswith(b".\n"):
        return data.find(b"\n", first + 1) + 1
    end = data.find(b"\n.\r\n", first)
    if end < 0:
        end = data.find(b"\n.\n", first)
        return None if end < 0 else end + 3
    return end + 4


async def _capabilities(session: Session) -> bytes | None:
    session.send(b"CAPA\r\n")
    raw = await session.read(_multiline_framer, "a POP3 reply to CAPA")
    if raw.startswith(b"+OK"):
        return raw
    if raw.startswith(b"-ERR"):
        return None
    raise session.protocol_error("a POP3 reply to CAPA", raw)


async def converse(session: Session, start_tls: bool) -> None:
    greeting = await session.read_line("a POP3 greeting (+OK)")
    if not greeting.startswith(b"+OK"):
        raise session.protocol_error("a POP3 greeting (+OK)", greeting)
    session.detail = greeting[3:].decode("latin-1").strip()
    if start_tls:
        capabilities = await _capabilities(session)
        offered = capabilities is not None and any(
            line.strip().upper() == b"STLS" for line in capabilities.splitlines()[1:]
        )
        if not offered:
            raise session.starttls_refused("the POP3 server does not offer STLS")
        session.send(b"STLS\r\n")
        reply = await session.read_line("a POP3 reply to STLS")
        if not reply.startswith(b"+OK"):
            raise session.starttls_refused(f'STLS refused: "{reply.decode("latin-1").strip()}"')
        await session.start_tls()
        if await _capabilities(session) is None:
            raise session.protocol_error("CAPA to succeed over TLS", b"-ERR")
    session.send(b"QUIT\r\n")
