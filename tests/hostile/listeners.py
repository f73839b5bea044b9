"""Threaded loopback listeners for the hostile tests, the bench and the e2e tests.

Threads, not the event loop of the process under test: the targets must keep answering however
badly the prober behaves. What a listener does with a connection is one function,
``on_accept(conn) -> keep``; a kept connection stays open (a target that never answers) until
the listener closes.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from types import TracebackType

OnAccept = Callable[[socket.socket], bool]


class Listener:
    """A listener on 127.0.0.1 with a port of its own; ``accepts`` are the monotonic times of
    the connections it took."""

    def __init__(
        self, on_accept: OnAccept, *, backlog: int = 1024, rcvbuf: int = 0, max_held: int = 4096
    ) -> None:
        self.on_accept = on_accept
        self.accepts: list[float] = []
        self.held: list[socket.socket] = []
        self.max_held = max_held
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:  # inherited by accepted sockets: a target that takes little
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(backlog)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepts.append(time.monotonic())
            keep = False
            with contextlib.suppress(OSError):
                keep = self.on_accept(conn)
            if keep and len(self.held) < self.max_held:
                self.held.append(conn)
            else:
                conn.close()


def close_at_once(_: socket.socket) -> bool:
    """Accept and close: the cheapest Up."""
    return False


def never_answer(_: socket.socket) -> bool:
    """Hold the connection and say nothing: a probe that waits for data waits its timeout."""
    return True


def reply(data: bytes, *, hold: bool = True) -> OnAccept:
    """Send ``data`` at once; then hold the line (or close it)."""

    def on_accept(conn: socket.socket) -> bool:
        conn.sendall(data)
        return hold

    return on_accept


def tls_reply(context: ssl.SSLContext, data: bytes = b"") -> OnAccept:
    """A TLS handshake with ``context`` in a thread of its own (a slow client must not stall
    the listener), then ``data``; the connection ends after the client's first byte or 5 s."""

    def talk(conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError), conn, context.wrap_socket(conn, server_side=True) as tls:
            if data:
                tls.sendall(data)
            tls.recv(1)

    def on_accept(conn: socket.socket) -> bool:
        threading.Thread(target=talk, args=(conn,), daemon=True).start()
        return True  # the thread owns it; closing it twice at the end is harmless

    return on_accept
