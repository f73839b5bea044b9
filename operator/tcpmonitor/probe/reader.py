"""The asyncio protocol every probe connection reads through, before and after TLS.

One object for the whole connection: ``loop.start_tls`` hands it the decrypted bytes after an
upgrade, so a dialog and the assertions see one stream of what the target said.
"""

from __future__ import annotations

import asyncio


class Reader(asyncio.Protocol):
    """Collects the reply up to a cap and wakes the engine on data, EOF or loss."""

    def __init__(self, cap: int) -> None:
        self.buffer = bytearray()
        self.cap = cap
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.writing_paused = False
        self._waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        room = self.cap - len(self.buffer)
        if room > 0:
            self.buffer += data[:room]
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, wake_after: float | None = None) -> None:
        """Until data, EOF, loss or room to write arrives; or ``wake_after`` seconds."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(wake_after, self._wake) if wake_after is not None else None
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
