"""The blackbox exporter (and Prometheus) as peers of the benchmarks: start, drive, measure.

Both are Debian packages, started here as plain child processes on loopback ports with configs
the bench writes (never their systemd units):

    apt-get install -y --no-install-recommends prometheus prometheus-blackbox-exporter
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
PROMETHEUS = "/usr/bin/prometheus"

Target = tuple[str, int]


def installed(binary: str) -> bool:
    return os.access(binary, os.X_OK)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a running process (VmRSS now, VmHWM the peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as reply,
        ):
            if reply.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f}s")


@contextlib.contextmanager
def child(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in ``log``; terminated (then killed) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def exporter(config: str, extra: tuple[str, ...] = ()) -> Iterator[tuple[int, int]]:
    """The blackbox exporter with this YAML config on a free loopback port: (pid, port)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "blackbox.yml"
        cfg.write_text(config)
        argv = [BLACKBOX, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"]
        with child([*argv, *extra], Path(tmp) / "blackbox.log") as proc:
            wait_http(f"http://127.0.0.1:{port}/metrics", proc)
            yield proc.pid, port


async def drive_exporter(
    port: int, pid: int, module: str, targets: list[Target], probes: int, concurrency: int
) -> dict[str, float]:
    """``probes`` calls of /probe?module=MODULE, ``concurrency`` at a time, cycling through the
    targets; the exporter's own CPU per probe (the HTTP client runs in this process and is
    not counted)."""
    import aiohttp  # noqa: PLC0415 - only needed for this peer

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        cycle = itertools.cycle(targets)
        remaining, ok = probes, 0

        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                host, tport = next(cycle)
                url = f"http://127.0.0.1:{port}/probe?module={module}&target={host}:{tport}"
                async with http.get(url) as r:
                    if "\nprobe_success 1" in await r.text():
                        ok += 1

        cpu0, wall0 = process_cpu(pid), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = process_cpu(pid) - cpu0, time.perf_counter() - wall0
    return {
        "probes_per_second": probes / wall,
        "cpu_seconds_per_1000": cpu / probes * 1000,
        "success_ratio": ok / probes,
    }
