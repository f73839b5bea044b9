"""What each hostile tenant costs an unrelated good monitor in the same ``tcpmonitor run``.

For every attack of issue 9 (a catastrophic regular expression, slot hogging with targets that
never answer, scrapers, payloads a target never reads, a hostile certificate, a YAML bomb sent
in by SIGHUP) this starts ``tcpmonitor run -f`` with the attack and one good monitor probing a
counting listener every second, lets it run, and prints the good monitor's probe count and
lateness (p99, max: how much later than one interval each probe came after the previous one)
and the child's peak RSS. The first row is the same run without an attack.

    python bench/hostile_neighbours.py [--duration 20] [--only regex,slots]

Targets are threads of this process on 127.0.0.1; every load loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.hostile.bystander import Bystander
from tests.hostile.certificates import forging_certificate
from tests.hostile.files import MONITOR_BOMB
from tests.hostile.listeners import Listener, close_at_once, never_answer, reply, tls_reply
from tests.hostile.standalone import standalone, write_manifests

Manifest = dict[str, Any]


def monitor(namespace: str, name: str, port: int, **spec: Any) -> Manifest:
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"host": "127.0.0.1", "port": port} | spec,
    }


def scrape_loop(port: int, stop: threading.Event, limit: int = 100_000) -> None:
    for _ in range(limit):
        if stop.is_set():
            return
        with contextlib.suppress(OSError, urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()


@contextlib.contextmanager
def scrapers(port: int, loops: int, burst: int) -> Iterator[None]:
    stop = threading.Event()
    pool = ThreadPoolExecutor(loops + burst)
    for _ in range(loops):
        pool.submit(scrape_loop, port, stop)
    time.sleep(2)
    for _ in range(burst):
        pool.submit(scrape_loop, port, stop, 1)
    try:
        yield
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_attack(
    name: str,
    manifests: list[Manifest],
    duration: float,
    during: Callable[[int, int, Path], contextlib.AbstractContextManager[None]] | None = None,
) -> dict[str, Any]:
    with Bystander() as good, tempfile.TemporaryDirectory() as tmp:
        file = write_manifests(Path(tmp) / "monitors.yaml", good.monitor(), *manifests)
        logs = Path(tmp) / "run.log"
        with standalone("-f", str(file), logs=logs) as (proc, port):
            start = time.monotonic()
            with during(proc.pid, port, file) if during else contextlib.nullcontext():
                time.sleep(max(0.0, duration - (time.monotonic() - start)))
            rss = peak_rss_mb(proc.pid)
            late = sorted(good.lateness(1.0, start))
            count = len(good.since(start))
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else float("inf")
    worst = late[-1] if late else float("inf")
    return {"attack": name, "probes": count, "p99": p99, "max": worst, "rss": rss}


def sighup_bomb(pid: int, _: int, file: Path) -> contextlib.AbstractContextManager[None]:
    """A TcpMonitor carrying a billion laughs appended to the running file, then SIGHUP."""

    @contextlib.contextmanager
    def attack() -> Iterator[None]:
        file.write_text(file.read_text() + "---\n" + MONITOR_BOMB)
        os.kill(pid, signal.SIGHUP)
        yield

    return attack()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--only", default="", help="comma-separated attack names")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    context = forging_certificate().server_context(Path(tempfile.mkdtemp()))
    silent = Listener(never_answer)
    regex = Listener(reply(b"a" * 40 + b"!"))
    sink = Listener(never_answer, rcvbuf=4096)
    tls = Listener(tls_reply(context))
    bulk = Listener(close_at_once)
    targets = [silent, regex, sink, tls, bulk]
    attacks: list[tuple[str, list[Manifest], Any]] = [
        ("none", [], None),
        (
            "regex (a+)+$ x4",
            [
                monitor(
                    "hostile",
                    f"regex-{i}",
                    regex.port,
                    interval="1s",
                    timeout="900ms",
                    assertions=[
                        {"source": "ResponseData", "comparison": "Matches", "target": "(a+)+$"}
                    ],
                )
                for i in range(4)
            ],
            None,
        ),
        (
            "slots: 512 silent targets, 30s timeout",
            [
                monitor(
                    "hostile",
                    f"slow-{i}",
                    silent.port,
                    interval="60s",
                    timeout="30s",
                    assertions=[
                        {"source": "ResponseData", "comparison": "Contains", "target": "never"}
                    ],
                )
                for i in range(512)
            ],
            None,
        ),
        (
            "scrapers: 4 looping + 200 at once, 3,000 monitors",
            [monitor("bulk", f"m{i}", bulk.port, interval="60s") for i in range(3000)],
            lambda _, port, __: scrapers(port, 4, 200),
        ),
        (
            "never-read 6 KB payloads x50",
            [
                monitor(
                    "hostile",
                    f"sink-{i}",
                    sink.port,
                    interval="1s",
                    timeout="900ms",
                    sendBase64="QUFB" * 2048,
                )
                for i in range(50)
            ],
            None,
        ),
        (
            "certificate: ESC/CR/LF names, 1,002 SANs",
            [
                monitor(
                    "hostile",
                    f"cert-{i}",
                    tls.port,
                    interval="1s",
                    timeout="900ms",
                    tls={"enabled": True, "insecureSkipVerify": True},
                )
                for i in range(4)
            ],
            None,
        ),
        ("SIGHUP with a YAML bomb", [], sighup_bomb),
    ]
    rows = []
    try:
        for name, manifests, during in attacks:
            key = name.split(":")[0].split(" ")[0]
            if only and key not in only:
                continue
            rows.append(run_attack(name, manifests, args.duration, during))
            row = rows[-1]
            print(
                f"{row['attack']:<50} probes {row['probes']:>3}  p99 {row['p99'] * 1000:7.1f} ms"
                f"  max {row['max'] * 1000:7.1f} ms  peak RSS {row['rss']:6.1f} MB",
                flush=True,
            )
    finally:
        for t in targets:
            t.close()


if __name__ == "__main__":
    main()
