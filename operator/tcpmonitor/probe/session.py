"""The handle a dialog (a built-in protocol or spec.steps) talks to the target through.

A dialog sends, reads whole messages and asks for the TLS upgrade; the engine owns the socket,
the deadline and the handshake. Every way a read can end without the message (the deadline,
a close, a reset, the read cap) becomes a classified :class:`ProbeFailure` here, quoting what
the target said, so each protocol module only decides what its messages mean.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from ..api import ErrorCode
from ..api.result import MAX_EXCERPT
from .assertions import CREDIT_PER_BYTE, FREE_CHECKED_BYTES
from .excerpt import NO_SECRETS, Redactor
from .failures import ProbeFailure, classify_socket_error, classify_tls_error
from .reader import Reader

# How much of what the target said a failure message quotes.
QUOTED = 120

# Given the bytes not yet consumed, the length of the complete message at their start, or None
# while more bytes are needed.
Framer = Callable[[bytes], int | None]


def line_framer(data: bytes) -> int | None:
    end = data.find(b"\n")
    return None if end < 0 else end + 1


class Session:
    """One connection as a dialog sees it; created by the engine."""

    def __init__(
        self,
        reader: Reader,
        transport: Callable[[], asyncio.Transport],
        *,
        remote: str,
        server_name: str,
        deadline: float,
        upgrade: Callable[[], Awaitable[None]],
        redactor: Redactor = NO_SECRETS,
    ) -> None:
        self._reader = reader
        self._transport = transport
        self._upgrade = upgrade
        self._redactor = redactor
        self.remote = remote
        # The name the target is addressed by (XMPP's stream 'to'), as TLS uses it for SNI.
        self.server_name = server_name
        self.deadline = deadline
        self.consumed = 0  # bytes of reader.buffer handed out as messages
        self.detail: str | None = None  # what the dialog learnt: version or banner
        self.upgraded = False
        # Looking for a message costs the bytes looked at. As for assertions, each byte
        # received pays for CREDIT_PER_BYTE bytes of looking, plus one reply's worth up front:
        # short replies are looked at on every read, and a target trickling its reply (endless
        # "250-" lines, one per packet) costs linear work, not quadratic.
        self._credit = FREE_CHECKED_BYTES
        self._credited = 0
        self.looked_at_bytes = 0  # the total, for the tests of that bound
        self.last_message = b""  # the last message handed out, for failure messages

    @property
    def local_address(self) -> tuple[object, ...] | None:
        name = self._transport().get_extra_info("sockname")
        return tuple(name) if name else None

    def pending(self) -> bytes:
        return bytes(self._reader.buffer[self.consumed :])

    def seconds_left(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def quoted(self, data: bytes, limit: int = QUOTED) -> str:
        """What the target said, escaped, cut and with the secret bytes hidden, for a failure
        message."""
        return self._redactor.excerpt(data, min(limit, MAX_EXCERPT))

    def send(self, data: bytes) -> None:
        """Hand ``data`` to the connection (dialog messages are small: no flow control)."""
        if self._reader.lost:
            raise ProbeFailure(
                ErrorCode.CONNECTION_CLOSED, f"{self.remote}: closed by the peer mid-dialog"
            )
        self._transport().write(data)

    def protocol_error(self, expected: str, got: bytes, where: str | None = None) -> ProbeFailure:
        return ProbeFailure(
            ErrorCode.PROTOCOL_ERROR,
            f'{where or self.remote}: expected {expected}, got "{self.quoted(got)}"',
        )

    def starttls_refused(self, message: str) -> ProbeFailure:
        """``message`` may quote the target's reply, decoded: its secret runs are hidden."""
        return ProbeFailure(
            ErrorCode.STARTTLS_REFUSED, f"{self.remote}: {self._redactor.text(message)}"
        )

    async def read(self, framer: Framer, expected: str, where: str | None = None) -> bytes:
        """The next complete message; raises a classified failure when it does not come.

        ``expected`` names the message for the failure (``an SMTP greeting``), ``where`` the
        place (the address, or ``steps[2]``).
        """
        reader = self._reader
        place = where or self.remote
        started = asyncio.get_running_loop().time()
        looked_at = -1
        while True:
            size = len(reader.buffer) - self.consumed
            ended = reader.eof or reader.lost or len(reader.buffer) >= reader.cap
            self._credit += (len(reader.buffer) - self._credited) * CREDIT_PER_BYTE
            self._credited = len(reader.buffer)
            if size != looked_at and (ended or self._credit >= size):
                looked_at = size
                found = self._look(framer)
                if found is not None:
                    return found
            if reader.error is not None and not reader.buffer[self.consumed :]:
                raise self._connection_failure(reader.error, place, expected)
            if ended:
                got = self.pending()
                if len(reader.buffer) >= reader.cap:
                    raise ProbeFailure(
                        ErrorCode.PROTOCOL_ERROR,
                        f'{place}: expected {expected}, got {reader.cap} bytes without it: "'
                        f'{self.quoted(got)}"',
                    )
                if not got:
                    raise ProbeFailure(
                        ErrorCode.CONNECTION_CLOSED,
                        f"{place}: expected {expected}, but the peer closed the connection",
                    )
                raise ProbeFailure(
                    ErrorCode.PROTOCOL_ERROR,
                    f'{place}: expected {expected}, got "{self.quoted(got)}" and then the peer '
                    "closed the connection",
                )
            try:
                async with asyncio.timeout_at(self.deadline):
                    await reader.wait()
            except TimeoutError:
                # A last look: the message may have completed on a read that had not paid.
                unseen = len(reader.buffer) - self.consumed != looked_at
                found = self._look(framer) if unseen else None
                if found is not None:
                    return found
                waited = asyncio.get_running_loop().time() - started
                got = self.pending()
                code = ErrorCode.PROTOCOL_ERROR if got else ErrorCode.READ_TIMEOUT
                raise ProbeFailure(
                    code,
                    f'{place}: expected {expected} within {waited:.3g}s, got "{self.quoted(got)}"',
                ) from None

    def _connection_failure(self, error: BaseException, place: str, expected: str) -> ProbeFailure:
        """Classified as the engine classifies it (a TLS alert after an upgrade is a TLS
        failure, a reset a reset), said with what was awaited."""
        if isinstance(error, ssl.SSLError):
            failure = classify_tls_error(error, self.remote)
        elif isinstance(error, OSError):
            failure = classify_socket_error(error, self.remote)
        else:
            failure = ProbeFailure(ErrorCode.CONNECTION_RESET, repr(error))
        message = failure.message.removeprefix(f"{self.remote}: ")
        return ProbeFailure(failure.code, f"{place}: expected {expected}, but {message}")

    def _look(self, framer: Framer) -> bytes | None:
        pending = self.pending()
        self._credit -= len(pending)
        self.looked_at_bytes += len(pending)
        length = framer(pending)
        if length is None:
            return None
        self.consumed += length
        self.last_message = pending[:length]
        return self.last_message

    async def read_line(self, expected: str, where: str | None = None) -> bytes:
        return await self.read(line_framer, expected, where)

    async def start_tls(self) -> None:
        """Upgrade now. Bytes the target sent after its go-ahead and before the handshake are
        refused: they would be read as if they came through TLS (the STARTTLS injection
        attacks, CVE-2011-0411 and kin)."""
        leftover = self.pending()
        if leftover:
            raise ProbeFailure(
                ErrorCode.PROTOCOL_ERROR,
                f'{self.remote}: sent data after agreeing to start TLS: "{self.quoted(leftover)}"',
            )
        await self._upgrade()
        self.upgraded = True
