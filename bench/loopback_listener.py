"""A loopback accept-and-close server in its own process, the target of the benchmarks.

Own process so that its CPU is not charged to the prober being measured; several loopback
addresses so that TIME_WAIT sockets from tens of thousands of probes do not exhaust the
ephemeral ports of one address pair.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
from multiprocessing.connection import Connection

ADDRESSES = [f"127.0.0.{i}" for i in range(1, 9)]


def _serve(ready: Connection) -> None:
    selector = selectors.DefaultSelector()
    ports = []
    for address in ADDRESSES:
        listener = socket.create_server((address, 0), backlog=4096)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
        ports.append(listener.getsockname()[1])
    ready.send(ports)
    while True:
        for key, _ in selector.select():
            listener = key.fileobj
            assert isinstance(listener, socket.socket)
            for _ in range(64):
                try:
                    conn, _addr = listener.accept()
                except BlockingIOError:
                    break
                conn.close()


class LoopbackListener:
    """Context manager yielding [(address, port), ...]."""

    def __enter__(self) -> list[tuple[str, int]]:
        parent, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        ports = parent.recv()
        return list(zip(ADDRESSES, ports, strict=True))

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(timeout=5)
