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
def standalone(*args: str, startup: float = 30.0) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Start ``tcpmonitor run ARGS`` with metrics on a free loopback port; yield (process,
    port) once it says it is probing; SIGTERM it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpmonitor", "run", *args, "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + startup
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("probing "):
                break
        else:
            raise AssertionError("tcpmonitor run did not start")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
