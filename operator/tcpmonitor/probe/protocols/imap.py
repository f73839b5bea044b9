"""IMAP4 (RFC 9051): the ``* OK`` greeting; with STARTTLS, CAPABILITY, STARTTLS, and
CAPABILITY again over TLS (RFC 9051 section 6.2.1), then LOGOUT."""

from __future__ import annotations

import re

from ..session import Framer, Session

_CAPABILITY_CODE = re.compile(r"^\[CAPABILITY ([^\]]*)\]\s*", re.IGNORECASE)


def _tagged_framer(tag: bytes) -> Framer:
    """Up to and including the tagged completion line (untagged lines come before it)."""

    def framer(data: bytes) -> int | None:
        position = 0
        while True:
            end = data.find(b"\n", position)
            if end < 0:
                return None
            if data[position:].startswith(tag + b" "):
                return end + 1
            position = end + 1

    return framer


async def _command(session: Session, tag: str, command: str) -> tuple[bool, bytes]:
    session.send(f"{tag} {command}\r\n".encode())
    raw = await session.read(_tagged_framer(tag.encode()), f"an IMAP reply to {command}")
    last = raw.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    status = last[len(tag) + 1 :].split(b" ", 1)[0].upper()
    if status not in (b"OK", b"NO", b"BAD"):
        raise session.protocol_error(f"an IMAP reply to {command}", raw)
    return status == b"OK", raw


async def converse(session: Session, start_tls: bool) -> None:
    greeting = await session.read_line("an IMAP greeting (* OK)")
    text = greeting.decode("latin-1").rstrip("\r\n")
    if not (text.upper().startswith("* OK") or text.upper().startswith("* PREAUTH")):
        raise session.protocol_error("an IMAP greeting (* OK)", greeting)
    banner = text.split(" ", 2)[2] if text.count(" ") >= 2 else ""
    capability = _CAPABILITY_CODE.match(banner)
    session.detail = banner[capability.end() :] if capability else banner
    if start_tls:
        capabilities = capability.group(1) if capability else ""
        if not capabilities:
            _, raw = await _command(session, "t1", "CAPABILITY")
            capabilities = raw.decode("latin-1")
        if "STARTTLS" not in capabilities.upper().split():
            raise session.starttls_refused("the IMAP server does not offer STARTTLS")
        ok, raw = await _command(session, "t2", "STARTTLS")
        if not ok:
            raise session.starttls_refused(f'STARTTLS refused: "{raw.decode("latin-1")[:80]}"')
        await session.start_tls()
        ok, raw = await _command(session, "t3", "CAPABILITY")
        if not ok:
            raise session.protocol_error("CAPABILITY to succeed over TLS", raw)
    session.send(b"t9 LOGOUT\r\n")
