"""Secret material for the tests that look for it where it must never be, and the looking.

A payload, a client key and a CA bundle, fresh per run (so no match is an accident), with every
form in which they could escape: as sent, escaped for a terminal, JSON-escaped, base64 (how the
API serves a Secret's data) and hex. A PEM is looked for line by line as well: any line of its
body is base64 of the key or certificate itself.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme


def _pem_lines(pem: bytes) -> list[str]:
    return [
        line.decode()
        for line in pem.splitlines()
        if line and not line.startswith(b"-----") and len(line) >= 16
    ]


@dataclass
class SecretMaterial:
    """A CA that issued a server certificate (which requires a client certificate) and a
    client certificate, and a payload: everything a monitor may read from Secrets."""

    token: str = field(default_factory=lambda: f"s3cr3t-{secrets.token_hex(12)}")
    ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.payload = f"LOGIN probe {self.token}\r\n".encode()
        self.ca_pem = self.ca.cert_pem.bytes()
        client = self.ca.issue_cert("probe-client.example")
        self.client_cert_pem = b"".join(blob.bytes() for blob in client.cert_chain_pems)
        self.client_key_pem = client.private_key_pem.bytes()
        self._server = self.ca.issue_cert("localhost", "127.0.0.1")

    def server_context(self) -> ssl.SSLContext:
        """TLS that requires a client certificate from this CA, as a mutual-TLS service."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.configure_cert(context)
        context.verify_mode = ssl.CERT_REQUIRED
        self.ca.configure_trust(context)
        return context

    def write_server_files(self, directory: Path) -> tuple[Path, Path, Path]:
        """(certificate chain, key, CA) files for a server in another process."""
        cert, key, ca = directory / "server.crt", directory / "server.key", directory / "ca.crt"
        cert.write_bytes(b"".join(blob.bytes() for blob in self._server.cert_chain_pems))
        key.write_bytes(self._server.private_key_pem.bytes())
        ca.write_bytes(self.ca_pem)
        return cert, key, ca

    def forms(self) -> dict[str, str]:
        """Every string whose presence means a Secret leaked, named for the report."""
        found: dict[str, str] = {}
        values = {
            "payload": self.payload,
            "client key": self.client_key_pem,
            "CA": self.ca_pem,
        }
        for name, value in values.items():
            found[f"{name} base64"] = base64.b64encode(value).decode()
            found[f"{name} hex"] = value.hex()
            found[f"{name} json"] = json.dumps(value.decode())[1:-1]
        found["payload token"] = self.token
        found["payload token hex"] = self.token.encode().hex()
        for shift in range(3):  # the token's base64 inside the payload's, at each alignment
            chunk = base64.b64encode(b"x" * shift + self.token.encode()).decode()
            found[f"payload token base64/{shift}"] = chunk[4:-4]
        for i, line in enumerate(_pem_lines(self.client_key_pem)):
            found[f"client key line {i}"] = line
        for i, line in enumerate(_pem_lines(self.ca_pem)):
            found[f"CA line {i}"] = line
        return found

    def leaks(self, text: str) -> list[str]:
        """The names of the forms found in ``text`` (empty: nothing leaked)."""
        return [name for name, form in self.forms().items() if form in text]


@dataclass
class EchoServer:
    port: int
    received: list[bytes] = field(default_factory=list)
    connections: int = 0

    @property
    def got(self) -> bytes:
        return b"".join(self.received)


@contextmanager
def echo_server(context: ssl.SSLContext | None = None) -> Iterator[EchoServer]:
    """A loopback server on a thread that sends back every byte it gets (over TLS with
    ``context``), and records them: the proof that a secret really went out and came back."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    server = EchoServer(int(listener.getsockname()[1]))
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            stream = context.wrap_socket(conn, server_side=True) if context else conn
            for _ in range(64):
                data = stream.recv(4096)
                if not data:
                    break
                server.received.append(data)
                stream.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def serve_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server.connections += 1
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=3)
