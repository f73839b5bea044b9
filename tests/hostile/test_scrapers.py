"""Hostile scrapers: looping and crowding ``/metrics`` of ``tcpmonitor run`` with 3,000 monitors.

The attack: four scrapers in a tight loop, then two hundred at once. The verdicts: an unrelated
monitor keeps its schedule, ``/healthz`` answers within a second throughout, the process's
memory stays bounded, every admitted scrape gets a complete exposition and the excess is
refused with a 503.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .bystander import Bystander
from .standalone import standalone, write_manifests

MONITORS = 3_000
PHASE = 7.0  # seconds of each attack
SCRAPERS = Path(__file__).with_name("scrapers.py")
SERIES = "tcpmonitor_probe_success"
# The process at rest holds about 100 MB with 3,000 monitors, and one exposition is about
# 2.3 MB. The bound leaves room for a few bodies and the buffers of 200 connections, and none
# for a body per scraper (200 x 2.3 MB), which is what rendering per request could hold.
RSS_GROWTH_BOUND_MB = 64


@contextmanager
def accept_and_close() -> Iterator[int]:
    """The crowd's target: a loopback listener with a deep backlog that accepts and closes."""
    server = socket.create_server(("127.0.0.1", 0), backlog=4096)
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def crowd_monitor(i: int, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": f"m{i:04d}", "namespace": "crowd"},
        "spec": {"host": "127.0.0.1", "port": port, "interval": "60s", "timeout": "1s"},
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class RssWatch:
    """Samples a process's RSS every 100 ms until stopped (bounded in count)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(1_000):
            if self._stop.wait(0.1):
                return
            self.samples.append(rss_mb(self.pid))

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def helper(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(SCRAPERS), *args], stdout=subprocess.PIPE)


def result(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0
    value: dict[str, Any] = json.loads(out)
    return value


def wait_for_every_series(port: int, count: int, timeout: float) -> None:
    """Until one scrape shows a sample of every monitor (their first probes are immediate)."""
    found = -2
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scraped = result(helper("scrape", str(port), "--scrapers", "1", "--seconds", "0.1"), 20)
        counts = [int(k) for k in scraped["samples_per_body"]]
        found = max(counts, default=-2)
        if found == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"only {found} of {count} monitors in the exposition")


def admitted_bodies_are_complete(scraped: dict[str, Any], expected: int) -> int:
    bodies = scraped["samples_per_body"]
    assert set(bodies) == {str(expected)}, f"incomplete bodies: {bodies}"
    assert scraped["parsed_samples"] == expected
    return int(bodies[str(expected)])


def test_looping_and_crowding_scrapers_hurt_neither_probes_nor_health(tmp_path: Path) -> None:
    with Bystander() as bystander, accept_and_close() as crowd_port:
        docs = [bystander.monitor()] + [crowd_monitor(i, crowd_port) for i in range(MONITORS)]
        manifests = write_manifests(tmp_path / "monitors.yaml", *docs)
        with standalone(
            "-f", str(manifests), "--metrics-address", "127.0.0.1", logs=tmp_path / "run.log"
        ) as (proc, port):
            wait_for_every_series(port, MONITORS + 1, timeout=20)
            time.sleep(1)
            baseline = rss_mb(proc.pid)
            window = 2 * PHASE + 1
            watcher = helper("health", str(port), "--seconds", str(window))
            start = time.monotonic()
            with RssWatch(proc.pid) as rss:
                looping = helper("scrape", str(port), "--scrapers", "4", "--seconds", str(PHASE))
                looped = result(looping, PHASE + 30)
                crowd = helper("scrape", str(port), "--scrapers", "200", "--seconds", str(PHASE))
                crowded = result(crowd, PHASE + 30)
                healthz = result(watcher, window + 10)
            elapsed = time.monotonic() - start
            assert proc.poll() is None, "tcpmonitor run died under the attack"

    on_time = bystander.assert_on_time(1.0, window=elapsed, start=start)
    assert healthz["failures"] == [], healthz
    assert healthz["max"] < 1.0, healthz
    assert healthz["count"] >= window * 5  # the watcher itself was not starved
    peak = max(rss.samples)
    assert peak - baseline < RSS_GROWTH_BOUND_MB, f"RSS {baseline:.0f} -> {peak:.0f} MB"

    assert set(looped["statuses"]) == {"200"}, looped["statuses"]
    assert admitted_bodies_are_complete(looped, MONITORS + 1) >= 4
    assert set(crowded["statuses"]) <= {"200", "503"}, crowded["statuses"]
    assert crowded["statuses"]["503"] >= 200, "the excess of 200 scrapers was not refused"
    assert admitted_bodies_are_complete(crowded, MONITORS + 1) >= 1
    print(
        f"bystander {on_time}; healthz p99 {healthz['p99']:.3f}s max {healthz['max']:.3f}s; "
        f"RSS {baseline:.0f} -> {peak:.0f} MB; looping {looped['statuses']}; "
        f"crowd {crowded['statuses']}"
    )
