"""SSH (RFC 4253 section 4.2): the server's identification line ``SSH-2.0-software``.

The server may send other lines first; only a line starting with ``SSH-`` counts. Ours is
sent back so the server logs an ordinary early close, not a protocol mismatch.
"""

from __future__ import annotations

from ..failures import ProbeFailure
from ..session import Session

# RFC 4253 caps the identification at 255 bytes; lines before it are few in practice.
_MAX_LINES = 16


async def converse(session: Session, start_tls: bool) -> None:
    del start_tls  # SSH secures itself; validation refuses startTLS for it
    expected = "an SSH identification line (SSH-2.0-...)"
    before = b""
    for _ in range(_MAX_LINES):
        try:
            line = await session.read_line(expected)
        except ProbeFailure:
            if before:  # what it said instead is the diagnosis, not that it then went quiet
                raise session.protocol_error(expected, before) from None
            raise
        before += line
        if line.startswith(b"SSH-"):
            text = line.decode("latin-1").rstrip("\r\n")
            if not (text.startswith("SSH-2.0-") or text.startswith("SSH-1.99-")):
                raise session.protocol_error("SSH protocol version 2", line)
            session.detail = text
            session.send(b"SSH-2.0-tcpmonitor\r\n")
            return
        if not line.isascii():
            break
    raise session.protocol_error(expected, before)
