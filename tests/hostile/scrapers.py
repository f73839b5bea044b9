"""Hostile scrapers and a /healthz watcher, each run as a process of its own.

Own processes so that hundreds of scraper threads compete for their own GIL, not for the one
of the test process where the bystander timestamps its connections, and so that /healthz is
timed by a process that does nothing else. Only 127.0.0.1; every loop is bounded in time and
in count. Prints one JSON object.

    python scrapers.py scrape PORT --scrapers 200 --seconds 8 --series tcpmonitor_probe_success
    python scrapers.py health PORT --seconds 20
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import sys
import threading
import time
from typing import Any

MAX_REQUESTS_PER_SCRAPER = 5_000
REQUEST_TIMEOUT = 10.0  # Prometheus's default scrape timeout
PAUSE_AFTER_REFUSAL = 0.1


def complete(body: bytes, series: str) -> int:
    """How many samples of ``series`` a body holds, or -1 if it is cut short."""
    if not body.endswith(b"\n"):
        return -1
    return body.count(b"\n" + series.encode() + b"{")


def scrape(port: int, scrapers: int, seconds: float, series: str) -> dict[str, Any]:
    """``scrapers`` threads GET /metrics in a loop on keep-alive connections, half of them
    asking for gzip like Prometheus; a refused one pauses briefly and asks again."""
    deadline = time.monotonic() + seconds
    statuses: dict[str, int] = {}
    counts: dict[int, int] = {}  # samples of ``series`` in a body: how many bodies had that many
    first: list[str] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        headers = {"Accept-Encoding": "gzip"} if index % 2 else {}
        conn: http.client.HTTPConnection | None = None
        for _ in range(MAX_REQUESTS_PER_SCRAPER):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
            try:
                conn.request("GET", "/metrics", headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = None
            else:
                outcome = str(response.status)
                if response.status == 200:
                    if response.getheader("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    found = complete(body, series)
                    with lock:
                        counts[found] = counts.get(found, 0) + 1
                        if not first:
                            first.append(body.decode())
            with lock:
                statuses[outcome] = statuses.get(outcome, 0) + 1
            if outcome != "200":
                time.sleep(PAUSE_AFTER_REFUSAL)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT + 2)
    parsed = -1
    if first:
        from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

        families = {f.name: f for f in text_string_to_metric_families(first[0])}
        family = families.get(series)
        parsed = len(family.samples) if family is not None else 0
    return {
        "statuses": statuses,
        "samples_per_body": {str(k): v for k, v in counts.items()},
        "parsed_samples": parsed,
    }


def health(port: int, seconds: float) -> dict[str, Any]:
    """GET /healthz every 100 ms on a new connection, as a kubelet would."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    failures: list[str] = []
    while time.monotonic() < deadline and len(latencies) < 10_000:
        start = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                failures.append(str(response.status))
        except (OSError, http.client.HTTPException) as exc:
            failures.append(type(exc).__name__)
        latencies.append(time.monotonic() - start)
        time.sleep(0.1)
    ordered = sorted(latencies)
    return {
        "count": len(latencies),
        "failures": failures,
        "p99": ordered[int(len(ordered) * 0.99)] if ordered else None,
        "max": ordered[-1] if ordered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["scrape", "health"])
    parser.add_argument("port", type=int)
    parser.add_argument("--scrapers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--series", default="tcpmonitor_probe_success")
    args = parser.parse_args()
    if args.mode == "scrape":
        result = scrape(args.port, args.scrapers, args.seconds, args.series)
    else:
        result = health(args.port, args.seconds)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
