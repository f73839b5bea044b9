"""Real loopback servers with the behaviours probes must tell apart.

Each is an async context manager yielding the port; handlers are plain coroutines so a test
reads as "a server that does X".
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

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
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
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
def blocking_tls_server(context: ssl.SSLContext, reply: bytes = b"hello\n") -> Iterator[int]:
    """A TLS server on a plain thread, with OpenSSL's own alert behaviour.

    asyncio's server side drops the alert when a handshake fails (it never flushes it), which is
    not what real servers do; tests about alerts (client certificate required) use this one.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(reply)
                    tls.recv(1024)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=3)
