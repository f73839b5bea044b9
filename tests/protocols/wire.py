"""A few bytes over a plain socket: enough to see that a daemon speaks its protocol."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

from tests.daemons.runner import LOOPBACK

TIMEOUT = 5.0
MAX_BYTES = 64 * 1024


class Conversation:
    """One connection; ``read_until`` returns as soon as the reply is complete."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection((LOOPBACK, port), timeout=TIMEOUT)
        self.received = b""

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def read_until(self, complete: Callable[[bytes], bool]) -> bytes:
        """Read until ``complete`` holds for what came since the last call, the peer closes,
        TIMEOUT passes or MAX_BYTES arrived; return what came."""
        start = len(self.received)
        deadline = time.monotonic() + TIMEOUT
        while not complete(self.received[start:]) and len(self.received) < MAX_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError:
                break
            if not chunk:
                break
            self.received += chunk
        return self.received[start:]


def line(data: bytes) -> bool:
    return data.endswith(b"\n")


def containing(marker: bytes) -> Callable[[bytes], bool]:
    return lambda data: marker in data


def at_least(count: int) -> Callable[[bytes], bool]:
    return lambda data: len(data) >= count


def bson(fields: dict[str, int | str]) -> bytes:
    """Just enough BSON for a MongoDB command: int32 and string values."""
    body = b""
    for key, value in fields.items():
        name = key.encode() + b"\x00"
        if isinstance(value, int):
            body += b"\x10" + name + struct.pack("<i", value)
        else:
            encoded = value.encode() + b"\x00"
            body += b"\x02" + name + struct.pack("<i", len(encoded)) + encoded
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def op_msg(request_id: int, document: bytes) -> bytes:
    """An OP_MSG (opcode 2013) with one body section."""
    payload = struct.pack("<I", 0) + b"\x00" + document
    return struct.pack("<iiii", 16 + len(payload), request_id, 0, 2013) + payload
