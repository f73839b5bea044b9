"""The HTTP endpoint on a real socket: single-flight renders, admission, health during renders.

A slow render is a real collector that sleeps in ``collect()``, registered in a real registry.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Enum, Info, Summary, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from tcpmonitor.api import MonitorState, ProbeResult, Timings, TlsInfo, Verdict
from tcpmonitor.telemetry import http_endpoints
from tcpmonitor.telemetry.http_endpoints import start_http
from tcpmonitor.telemetry.metrics import Metrics


class SlowCollector:
    """``series`` gauges, rendered after ``delay`` seconds; counts its renders."""

    def __init__(
        self, delay: float = 0.0, series: int = 3, help_text: str = "A test gauge."
    ) -> None:
        self.delay = delay
        self.series = series
        self.help_text = help_text
        self.collects = 0
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self.collects += 1
        time.sleep(self.delay)
        family = GaugeMetricFamily("test_value", self.help_text, labels=["index"])
        for i in range(self.series):
            family.add_metric([str(i)], float(i))
        yield family


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(collector: SlowCollector, **kwargs: int) -> AsyncIterator[str]:
    registry = CollectorRegistry()
    registry.register(collector)
    port = free_port()
    runner = await start_http(registry, host="127.0.0.1", port=port, **kwargs)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def scrape(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[int, str, float, Mapping[str, str]]:
    start = time.monotonic()
    async with http.get(f"{url}/metrics", headers=headers) as response:
        text = await response.text()
        return response.status, text, time.monotonic() - start, response.headers


def test_concurrent_scrapes_share_one_render() -> None:
    collector = SlowCollector(delay=0.5)

    async def main() -> list[tuple[int, str, float, Mapping[str, str]]]:
        async with serving(collector, max_scrapes=8) as url, aiohttp.ClientSession() as http:
            return await asyncio.gather(*(scrape(http, url) for _ in range(6)))

    results = asyncio.run(main())
    assert [status for status, *_ in results] == [200] * 6
    assert len({text for _, text, *_ in results}) == 1
    assert collector.collects == 1


def test_scrapes_beyond_the_bound_are_refused_at_once() -> None:
    collector = SlowCollector(delay=1.0)

    async def main() -> list[tuple[int, str, float, Mapping[str, str]]]:
        async with serving(collector, max_scrapes=2) as url, aiohttp.ClientSession() as http:
            first = [asyncio.create_task(scrape(http, url)) for _ in range(2)]
            await asyncio.sleep(0.2)  # both admitted and waiting for the render
            rest = await asyncio.gather(*(scrape(http, url) for _ in range(6)))
            return [*await asyncio.gather(*first), *rest]

    results = asyncio.run(main())
    statuses = [status for status, *_ in results]
    assert statuses == [200, 200] + [503] * 6
    assert all(seconds < 0.5 for status, _, seconds, _ in results if status == 503)
    assert all(headers["Retry-After"] == "1" for status, *_, headers in results if status == 503)
    assert collector.collects == 1


def test_health_and_readiness_answer_while_a_slow_render_runs() -> None:
    collector = SlowCollector(delay=2.0)

    async def main() -> tuple[list[float], bool]:
        async with serving(collector) as url, aiohttp.ClientSession() as http:
            scraping = asyncio.create_task(scrape(http, url))
            await asyncio.sleep(0.2)
            latencies = []
            for path in ("/healthz", "/readyz") * 3:
                start = time.monotonic()
                async with http.get(f"{url}{path}") as response:
                    assert response.status == 200
                latencies.append(time.monotonic() - start)
            still_rendering = not scraping.done()
            await scraping
            return latencies, still_rendering

    latencies, still_rendering = asyncio.run(main())
    assert still_rendering
    assert max(latencies) < 0.5  # the render sleeps 2 s: health does not wait for it


def test_a_fresh_body_is_reused_and_a_stale_one_rendered_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_endpoints, "MIN_AGE", 0.5)
    collector = SlowCollector()

    async def main() -> None:
        async with serving(collector) as url, aiohttp.ClientSession() as http:
            await scrape(http, url)
            await scrape(http, url)
            assert collector.collects == 1
            await asyncio.sleep(http_endpoints.MIN_AGE + 0.1)
            await scrape(http, url)
            assert collector.collects == 2

    asyncio.run(main())


def test_the_exposition_is_complete_in_text_format_plain_gzipped_or_head() -> None:
    collector = SlowCollector(series=5000)

    async def main() -> tuple[bytes, bytes, str, str, str]:
        async with (
            serving(collector) as url,
            aiohttp.ClientSession(auto_decompress=False) as http,
        ):
            async with http.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}) as r:
                zipped, encoding = await r.read(), r.headers.get("Content-Encoding", "")
            async with http.head(f"{url}/metrics", headers={"Accept-Encoding": "identity"}) as r:
                length = r.headers["Content-Length"]
            # The same keep-alive connection: a HEAD that wrote its body would garble this.
            async with http.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"}) as r:
                plain, content_type = await r.read(), r.headers["Content-Type"]
            return zipped, plain, encoding, content_type, length

    zipped, plain, encoding, content_type, head_length = asyncio.run(main())
    assert head_length == str(len(plain))
    assert encoding == "gzip"
    assert gzip.decompress(zipped) == plain
    assert len(zipped) < len(plain) / 4
    assert content_type == http_endpoints.CONTENT_TYPE_LATEST
    (family,) = text_string_to_metric_families(plain.decode())
    assert family.name == "test_value"
    assert len(family.samples) == 5000
    assert collector.collects == 1


def test_a_scraper_that_does_not_read_loses_its_slot_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_endpoints, "SCRAPE_DEADLINE", 1.0)
    # 16 MB of help text: far more than the socket buffers of a reader that never reads.
    collector = SlowCollector(help_text="x" * 16_000_000)

    async def main() -> tuple[int, int, float]:
        async with serving(collector, max_scrapes=1) as url, aiohttp.ClientSession() as http:
            port = int(url.rsplit(":", 1)[1])
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", port))
            stalled.sendall(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"
            )
            await asyncio.sleep(0.3)
            refused, *_ = await scrape(http, url)
            await asyncio.sleep(1.0)
            start = time.monotonic()
            admitted, *_ = await scrape(http, url, **{"Accept-Encoding": "gzip"})
            stalled.close()
            return refused, admitted, time.monotonic() - start

    refused, admitted, seconds = asyncio.run(main())
    assert (refused, admitted) == (503, 200)
    assert seconds < 1.0


def test_the_text_is_byte_for_byte_what_prometheus_client_writes() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    odd = 'quote " backslash \\ newline \n ünïcode'
    started = datetime.now(UTC)
    expiry = datetime(2031, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    for name in ("web", odd, "a" * 200):
        key = ("ns", name)
        metrics.set_state(key, MonitorState.UNKNOWN)
        timings = Timings(connect=0.123, total=12345678.9)
        for verdict in (Verdict.UP, Verdict.UP, Verdict.DOWN):
            metrics.observe(
                key,
                ProbeResult(state=verdict, started_at=started, timings=timings),
                MonitorState.UP,
            )
    metrics.set_state(("other", "paused"), MonitorState.PAUSED)
    certificate = {
        "subject": "CN=x",
        "issuer": "CN=y",
        "notBefore": started,
        "notAfter": expiry,
        "daysRemaining": 1000.5,
        "sha256Fingerprint": "00:11",
    }
    tls = TlsInfo.model_validate({"verified": True, "certificate": certificate})
    metrics.observe(
        ("ns", "tls"), ProbeResult(state=Verdict.UP, started_at=started, tls=tls), MonitorState.UP
    )
    metrics.schedule_lag.observe(0.003)
    metrics.schedule_lag.observe(float("inf"))
    metrics.events_posted.labels("ProbeFailed").inc()
    Info("tcpmonitor_build", "Build.\nWith a \\ backslash.", registry=registry).info({"v": "1"})
    Enum("tcpmonitor_mode", "Mode.", states=["a", "b"], registry=registry).state("b")
    Summary("tcpmonitor_summary", "S.", registry=registry).observe(1.5)
    registry.register(SlowCollector(series=1000))

    expected = generate_latest(registry)
    assert "".join(http_endpoints.render_text(registry.collect())).encode() == expected
    assert http_endpoints.render_sliced(registry) == expected
