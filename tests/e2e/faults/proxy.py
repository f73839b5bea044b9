"""A TCP proxy in front of the API server that a test can cut and heal.

It forwards bytes and nothing else, so TLS passes through untouched: a client
verifies the API server's own certificate (which has the IP SAN 127.0.0.1) and
presents its own credentials, exactly as without the proxy. Point one component's
kubeconfig at the proxy (``ApiProxy.kubeconfig``) and only that component loses
the API server on ``cut()``; everything else, the test included, keeps talking to
it directly.

While the API server itself is down, the proxy still accepts a connection and
then resets it (it cannot refuse a connect it has already accepted): client-go
retries such a GET about ten times a second apart, where it gives up at once on
the "connection refused" it would get without the proxy.

One thread multiplexes every connection with a selector, so the thread count is
fixed and the number of connections is bounded by ``max_connections``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import yaml

LOOPBACK = "127.0.0.1"
_CHUNK = 64 * 1024
#: Stop reading from a side while this much is waiting to be written to the other.
_BUFFER_LIMIT = 1024 * 1024
_CONNECT_TIMEOUT = 2.0
_COMMAND_TIMEOUT = 10.0
_SELECT_TIMEOUT = 1.0


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: the peer gets "connection reset" at once,
    as behind a firewall that rejects, rather than a clean end of stream."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass(eq=False)
class _Side:
    """One socket of a proxied connection and what waits to be written to it."""

    sock: socket.socket
    outgoing: bytearray = field(default_factory=bytearray)
    #: The other side sent EOF: shut our write half once ``outgoing`` is flushed.
    peer_done: bool = False
    write_shut: bool = False
    #: This side sent EOF.
    done: bool = False


@dataclass(eq=False)
class _Command:
    """A request from another thread, carried out by the loop."""

    name: str
    done: threading.Event = field(default_factory=threading.Event)
    error: OSError | None = None


@dataclass(eq=False)
class _Link:
    client: _Side
    upstream: _Side

    def peer(self, side: _Side) -> _Side:
        return self.upstream if side is self.client else self.client

    def sides(self) -> tuple[_Side, _Side]:
        return self.client, self.upstream


class ApiProxy:
    """Forward 127.0.0.1:<free port> to the API server until cut(); see the module doc.

    Use as a context manager or call close(). ``upstream`` is the API server URL
    (``https://127.0.0.1:PORT``, as in ControlPlane.server or Cluster.server()).
    """

    def __init__(self, upstream: str, *, max_connections: int = 64) -> None:
        parts = urlsplit(upstream if "//" in upstream else f"//{upstream}")
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream needs a host and a port: {upstream!r}")
        self.upstream: tuple[str, int] = (parts.hostname, parts.port)
        self.max_connections = max_connections
        #: Connections forwarded / reset because ``max_connections`` were open.
        self.forwarded = 0
        self.rejected = 0
        self._cut = False
        self._links: set[_Link] = set()
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        # Other threads hand commands to the loop through this pair; the loop owns
        # every socket, so none is closed under its feet.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._commands: list[_Command] = []
        self._commands_lock = threading.Lock()
        self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"api-proxy-{self.port}")
        self._thread.daemon = True  # a test that forgets close() must not hang the run
        self._thread.start()

    # -- public API ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until heal().

        Returns once that is done. Clients get "connection reset by peer" on open
        connections and "connection refused" on new ones, at once, not a timeout:
        a partition where the client's packets are rejected. (Refused, not
        accepted-then-reset: client-go retries a reset GET ten times a second
        apart, but gives up on a refused connect at once, as with a real reject.)
        """
        self._command("cut")

    def heal(self) -> None:
        """Listen on the same port again; connections reset by cut() stay gone.

        The port was free while cut, so in theory another socket could have taken
        it; heal() then raises OSError rather than forward from elsewhere.
        """
        self._command("heal")

    def close(self) -> None:
        """Reset every connection, stop listening and join the thread. Idempotent."""
        if not self._thread.is_alive():
            return
        self._command("close")
        self._thread.join(_COMMAND_TIMEOUT)

    def kubeconfig(self, source: Path, dest: Path) -> Path:
        """Write a copy of the kubeconfig ``source`` whose clusters use this proxy."""
        document = yaml.safe_load(source.read_text())
        for entry in document.get("clusters", []):
            entry["cluster"]["server"] = self.url
        dest.touch(mode=0o600)
        dest.write_text(yaml.safe_dump(document))
        return dest

    def __enter__(self) -> ApiProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the loop (only its thread touches sockets) --------------------------------

    def _command(self, name: str) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the proxy is closed")
        command = _Command(name)
        with self._commands_lock:
            self._commands.append(command)
        self._wake_writer.send(b"x")
        if not command.done.wait(_COMMAND_TIMEOUT):
            raise TimeoutError(f"the proxy thread did not carry out {name!r}")
        if command.error is not None:
            raise command.error

    def _listen(self, port: int) -> socket.socket:
        # create_server sets SO_REUSEADDR, so heal() can bind the port again at once.
        listener = socket.create_server((LOOPBACK, port), backlog=self.max_connections)
        listener.setblocking(False)
        return listener

    def _loop(self) -> None:
        try:
            while self._running:
                for key, mask in self._selector.select(_SELECT_TIMEOUT):
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._run_commands()
                    else:
                        self._service(key.data, key.fileobj, mask)  # type: ignore[arg-type]
        finally:
            self._shutdown()

    def _run_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_reader.recv(4096)
        with self._commands_lock:
            commands, self._commands = self._commands, []
        for command in commands:
            try:
                if command.name in ("cut", "close"):
                    self._cut = True
                    self._stop_listening()
                    for link in list(self._links):
                        self._drop(link)
                if command.name == "heal" and self._listener is None:
                    self._listener = self._listen(self.port)
                    self._selector.register(self._listener, selectors.EVENT_READ, "listener")
                    self._cut = False
                if command.name == "close":
                    self._running = False
            except OSError as error:
                command.error = error
            command.done.set()

    def _stop_listening(self) -> None:
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _accept(self) -> None:
        if self._listener is None:
            return
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if len(self._links) >= self.max_connections:
            self.rejected += 1
            _reset(client)
            return
        try:
            # Blocking, but on loopback a connect succeeds or is refused at once.
            upstream = socket.create_connection(self.upstream, timeout=_CONNECT_TIMEOUT)
        except OSError:
            # The API server is down: the client sees its connection reset, as it
            # would see the connection refused without the proxy.
            _reset(client)
            return
        self.forwarded += 1
        link = _Link(_Side(client), _Side(upstream))
        for side in link.sides():
            side.sock.setblocking(False)
            side.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._selector.register(side.sock, selectors.EVENT_READ, link)
        self._links.add(link)

    def _service(self, link: _Link, sock: socket.socket, mask: int) -> None:
        if link not in self._links:
            return  # dropped earlier in this round of events
        side = link.client if sock is link.client.sock else link.upstream
        peer = link.peer(side)
        try:
            if mask & selectors.EVENT_WRITE:
                self._flush(side)
            if mask & selectors.EVENT_READ:
                data = side.sock.recv(_CHUNK)
                if data:
                    peer.outgoing += data
                    self._flush(peer)
                else:
                    side.done = True
                    peer.peer_done = True
                    self._flush(peer)
        except OSError:
            self._drop(link)
            return
        if all(s.done and s.write_shut for s in link.sides()):
            self._drop(link, reset=False)
            return
        for s in link.sides():
            self._update_interest(link, s)

    def _flush(self, side: _Side) -> None:
        if side.outgoing:
            try:
                sent = side.sock.send(side.outgoing)
            except BlockingIOError:
                sent = 0
            del side.outgoing[:sent]
        if not side.outgoing and side.peer_done and not side.write_shut:
            side.sock.shutdown(socket.SHUT_WR)  # pass the peer's EOF on
            side.write_shut = True

    def _update_interest(self, link: _Link, side: _Side) -> None:
        events = 0
        # Read only while the peer keeps up: backpressure instead of unbounded buffers.
        if not side.done and len(link.peer(side).outgoing) < _BUFFER_LIMIT:
            events |= selectors.EVENT_READ
        if side.outgoing:
            events |= selectors.EVENT_WRITE
        registered = side.sock in self._selector.get_map()
        if events and registered:
            self._selector.modify(side.sock, events, link)
        elif events:
            self._selector.register(side.sock, events, link)
        elif registered:
            self._selector.unregister(side.sock)

    def _drop(self, link: _Link, *, reset: bool = True) -> None:
        self._links.discard(link)
        for side in link.sides():
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(side.sock)
            if reset:
                _reset(side.sock)
            else:
                side.sock.close()

    def _shutdown(self) -> None:
        for link in list(self._links):
            self._drop(link)
        self._stop_listening()
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()
