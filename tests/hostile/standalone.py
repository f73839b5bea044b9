"""``tcpmonitor run -f`` as a child process, for attacks that must be seen from outside."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_manifests(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


@contextmanager
def standalone(
    *args: str, logs: Path, startup: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start ``tcpmonitor run ARGS`` with metrics on a free loopback port, its stdout and
    stderr in ``logs`` (a file, so a chatty child never blocks on a full pipe); yield
    (process, port) once it says it is probing; SIGTERM it afterwards."""
    port = free_port()
    with logs.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tcpmonitor", "run", *args, "--metrics-port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + startup
        while b"probing " not in logs.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tcpmonitor run did not start: {logs.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
