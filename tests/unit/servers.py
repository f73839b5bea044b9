"""Real loopback servers with the behaviours probes must tell apart.

Each is an async context manager yielding the port; handlers are plain coroutines so a test
reads as "a server that does X".
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, suppress
from pathlib import Path

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(
    handler: Handler, *, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[int]:
    tasks: set[asyncio.Task[None]] = set()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (
            ConnectionError,
            ssl.SSLError,
            asyncio.CancelledError,
            asyncio.IncompleteReadError,
        ):
            pass
        finally:
            writer.transport.abort()
            tasks.discard(task)

    server = await asyncio.start_server(guarded, host, 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.sleep(0)


def greet(data: bytes, linger: float = 1.0) -> Handler:
    """Send ``data`` at once, then keep the connection open for ``linger`` seconds."""

    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(linger)

    return handler


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client goes away


def drip(data: bytes, delay: float) -> Handler:
    """Send one byte every ``delay`` seconds."""

    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(delay)
        await asyncio.sleep(5)

    return handler


async def close_at_once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def reset_after(data: bytes = b"", delay: float = 0.0) -> Handler:
    """Optionally send ``data``, then abort with an RST (SO_LINGER 0)."""

    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if data:
            writer.write(data)
            await writer.drain()
        await asyncio.sleep(delay)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    return handler


def closed_port() -> int:
    """A loopback port with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def threaded_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener on a plain thread whose connections ``answer`` handles, one at a
    time, with blocking sockets (2 s timeout); what it raises on a socket is swallowed."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with suppress(OSError):
                    answer(conn)

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=3)


def blocking_tls_server(
    context: ssl.SSLContext, reply: bytes = b"hello\n"
) -> AbstractContextManager[int]:
    """A TLS server on a plain thread, with OpenSSL's own alert behaviour.

    asyncio's server side drops the alert when a handshake fails (it never flushes it), which is
    not what real servers do; tests about alerts (client certificate required) use this one.
    """

    def answer(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:  # ssl.SSLError is an OSError
            tls.sendall(reply)
            tls.recv(1024)

    return threaded_server(answer)


_NEVER_READS = r"""
import socket, ssl, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by each connection
listener.bind(("127.0.0.1", 0))
listener.listen(1024)
context = None
if len(sys.argv) == 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
print(listener.getsockname()[1], flush=True)
held = []
while True:
    conn, _ = listener.accept()
    if context is not None:
        conn.settimeout(2)
        try:
            conn = context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            continue
    held.append(conn)  # open, and never read
"""


@contextmanager
def never_reading_server(cert: Path | None = None, key: Path | None = None) -> Iterator[int]:
    """A target that accepts (and with ``cert`` completes TLS), then never reads a byte.

    A child process, so the test process's open descriptors are the probe's alone; its receive
    buffer is tiny, so a payload beyond the sender's socket buffer stays on the probe's side.
    """
    tls = [str(cert), str(key)] if cert is not None and key is not None else []
    child = subprocess.Popen(
        [sys.executable, "-c", _NEVER_READS, *tls], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield int(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def payload_beyond_socket_buffers() -> int:
    """More than the kernel will ever buffer for one connection (tcp_wmem's maximum)."""
    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem_max = 4 << 20
    return 2 * wmem_max + (1 << 20)
