"""The process's HTTP surface: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

One small aiohttp server (aiohttp already comes with kopf) on the event loop that does the
probing, so a liveness check that answers proves that loop is not stuck.

That loop only does I/O for a scrape. Rendering the exposition (``generate_latest`` took about
a second at 10,000 monitors) runs in one worker thread (:class:`Exposition`): one render at a
time, shared by every scrape that arrives while it runs, reused for a few seconds, written in
slices that hand the GIL back to the loop. At most ``max_scrapes`` scrapes are admitted at
once; the others get a 503 at once, so a crowd of scrapers costs a small response each, never a
queue. An admitted scrape streams the shared body in slices with back-pressure, within one
egress budget for all scrapes, so a slow reader holds a slice in its socket buffer, not a copy
of the body, and it is cut off at ``SCRAPE_DEADLINE``.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]

MAX_SCRAPES = 8
"""Scrapes admitted at once: an HA pair of Prometheus servers, a federation and a few humans
with curl, with room to spare; each admitted scrape holds at most one slice of a shared body."""

MIN_AGE = 1.0
AGE_PER_RENDER_SECOND = 10.0
"""A body is reused for ``max(MIN_AGE, AGE_PER_RENDER_SECOND x its render time)`` seconds
after its render started. Even sliced, a render slows the loop while it runs (every time the
loop gives up the GIL it waits up to a slice to get it back), so renders must be rare: the
factor keeps the worker thread busy at most a tenth of the time, whatever the scrape rate. The
floor is one second, not more: whoever polls /metrics to see a change (an e2e test, a human
with watch and curl, a runner takeover measured from its probe counters) must see it within
about a second at small sizes; at 10,000 monitors a render takes 0.1-0.15 s, so bodies live
1-1.5 s there (bench/scrape_load.py measures the effect on probe timings). Both servers of an
HA pair of Prometheus get the same body."""

SCRAPE_DEADLINE = 15.0
"""An admitted scrape that has not received its whole body by then is cut off, so slow readers
cannot hold the admission slots. Longer than Prometheus's default scrape timeout (10 s)."""

SLICE = 256 * 1024
"""Bytes written to a scraper's socket at a time before waiting for it to drain."""

EGRESS_BYTES_PER_SECOND = 32 * 2**20
EGRESS_BURST = 8 * 2**20
"""What all scrapes together may send per second. Sending is the loop's own work, so the
budget bounds the loop time scrapers can take, whatever they do: 32 MiB/s is about four
uncompressed bodies a second at 10,000 monitors (8 MB each), or some sixty gzipped ones, where
Prometheus needs one per scrape interval per server. The burst lets one whole body out at once
when it is quiet."""

RENDER_SLICE = 0.001
RENDER_PAUSE = 0.0002
"""The render thread holds the GIL for at most ``RENDER_SLICE`` seconds at a stretch and then
sleeps ``RENDER_PAUSE``, so the event loop waits about a millisecond for the GIL instead of the
interpreter's switch interval (5 ms) after every system call it makes during a render. A
collector's own ``collect()`` is not sliced: it runs whole."""


@runtime_checkable
class RendersText(Protocol):
    """A family that writes its own text, in pieces (the per-monitor families do)."""

    def text_pieces(self) -> Iterator[str]: ...


def render_text(families: Iterable[Metric], *, samples_per_piece: int = 256) -> Iterator[str]:
    """The Prometheus text format exactly as ``prometheus_client.generate_latest`` writes it (a
    test holds it to that byte for byte), in pieces of a few hundred samples. Names are
    escaped once per name, not once per sample, which makes it about twice as fast."""
    names: dict[str, str] = {}
    labels: dict[str, str] = {}

    def name_of(name: str) -> str:
        escaped = names.get(name)
        if escaped is None:
            escaped = names[name] = openmetrics.escape_metric_name(name, openmetrics.UNDERSCORES)
        return escaped

    def label_of(name: str) -> str:
        escaped = labels.get(name)
        if escaped is None:
            escaped = labels[name] = openmetrics.escape_label_name(name, openmetrics.UNDERSCORES)
        return escaped

    def line(sample: Sample) -> str:
        pairs = []
        for key, value in sorted(sample.labels.items()):
            pairs.append(f'{label_of(key)}="{_escape_label_value(value)}"')
        label_text = "{" + ",".join(pairs) + "}" if pairs else ""
        stamp = "" if sample.timestamp is None else f" {int(float(sample.timestamp) * 1000):d}"
        return f"{name_of(sample.name)}{label_text} {_go_float(sample.value)}{stamp}\n"

    def header(name: str, doc: str, kind: str) -> str:
        doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name_of(name)} {doc}\n# TYPE {name_of(name)} {kind}\n"

    for metric in families:
        if isinstance(metric, RendersText):
            yield from metric.text_pieces()
            continue
        name, kind = metric.name, metric.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name, kind = name + "_info", "gauge"
        elif kind == "stateset":
            kind = "gauge"
        elif kind == "gaugehistogram":
            kind = "histogram"
        elif kind == "unknown":
            kind = "untyped"
        # OpenMetrics-only samples go into a gauge of their own after the family's samples.
        special = {metric.name + suffix: suffix for suffix in ("_created", "_gsum", "_gcount")}
        later: dict[str, list[str]] = {}
        piece = [header(name, metric.documentation, kind)]
        for sample in metric.samples:
            suffix = special.get(sample.name)
            if suffix is None:
                piece.append(line(sample))
            else:
                later.setdefault(suffix, []).append(line(sample))
            if len(piece) >= samples_per_piece:
                yield "".join(piece)
                piece = []
        for suffix, lines in sorted(later.items()):
            piece.append(header(metric.name + suffix, metric.documentation, "gauge"))
            for start in range(0, len(lines), samples_per_piece):
                piece.extend(lines[start : start + samples_per_piece])
                yield "".join(piece)
                piece = []
        if piece:
            yield "".join(piece)


def _escape_label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


_go_float: Callable[[float], str] = floatToGoString


def render_sliced(registry: CollectorRegistry) -> bytes:
    """``render_text`` of the whole registry, pausing every ``RENDER_SLICE`` for the loop."""
    pieces: list[bytes] = []
    stretch = time.perf_counter()
    for piece in render_text(registry.collect()):
        pieces.append(piece.encode())
        if time.perf_counter() - stretch > RENDER_SLICE:
            time.sleep(RENDER_PAUSE)
            stretch = time.perf_counter()
    return b"".join(pieces)


class ByteBudget:
    """A token bucket shared by all scrapes: ``spend`` waits until the bytes are affordable."""

    def __init__(self, rate: float = EGRESS_BYTES_PER_SECOND, burst: float = EGRESS_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._at = time.monotonic()

    async def spend(self, count: int) -> None:
        now = time.monotonic()
        self._level = min(self.burst, self._level + (now - self._at) * self.rate) - count
        self._at = now
        if self._level < 0:
            # In debt: later spenders go deeper into it and wait longer, so the rate holds.
            await asyncio.sleep(-self._level / self.rate)


@dataclass
class Body:
    """One rendered exposition, shared by every scrape served from it."""

    plain: bytes
    started: float  # loop time at which the render began: the data is at least this old
    max_age: float
    _gzip: asyncio.Future[bytes] | None = field(default=None, repr=False)


class Exposition:
    """Renders ``registry`` in a worker thread: single flight, reused while fresh."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        min_age: float | None = None,
        age_per_render_second: float | None = None,
    ) -> None:
        self._registry = registry
        self._min_age = MIN_AGE if min_age is None else min_age
        self._age_factor = (
            AGE_PER_RENDER_SECOND if age_per_render_second is None else age_per_render_second
        )
        # One thread: renders (and gzip) never run side by side, whatever the scrapers do.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exposition")
        self._body: Body | None = None
        self._pending: asyncio.Future[Body] | None = None

    async def body(self) -> Body:
        """The current body if it is fresh, else the render in progress or a new one."""
        loop = asyncio.get_running_loop()
        body = self._body
        if body is not None and loop.time() - body.started < body.max_age:
            return body
        if self._pending is None:
            self._pending = loop.create_task(self._render())
        # Shielded: one waiter giving up (a deadline) must not cancel the others' render.
        return await asyncio.shield(self._pending)

    async def gzipped(self, body: Body) -> bytes:
        """``body`` compressed once, by the first scrape that asks for it."""
        if body._gzip is None:
            loop = asyncio.get_running_loop()
            body._gzip = loop.run_in_executor(self._worker, _compress, body.plain)
        return await asyncio.shield(body._gzip)

    async def _render(self) -> Body:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            plain = await loop.run_in_executor(self._worker, render_sliced, self._registry)
            took = loop.time() - started
            # The old body lives on only in scrapes still sending it (admitted, and deadlined).
            self._body = Body(plain, started, max(self._min_age, self._age_factor * took))
            return self._body
        finally:
            self._pending = None

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def _compress(data: bytes) -> bytes:
    # Level 1: most of the size gain for a fraction of the CPU; zlib releases the GIL.
    return gzip.compress(data, compresslevel=1, mtime=0)


def _always_ok() -> tuple[bool, str]:
    return True, "ok"


def _wants_gzip(request: web.Request) -> bool:
    for coding in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip().lower() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


class MetricsEndpoint:
    """``GET /metrics``: admission, then a shared body streamed with back-pressure."""

    def __init__(
        self,
        exposition: Exposition,
        *,
        max_scrapes: int = MAX_SCRAPES,
        egress: ByteBudget | None = None,
    ) -> None:
        self.exposition = exposition
        self.egress = egress or ByteBudget()
        self.max_scrapes = max_scrapes
        self.active = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.active >= self.max_scrapes:
            return web.Response(
                status=503,
                text=f"busy: {self.active} scrapes in progress\n",
                headers={"Retry-After": "1"},
            )
        self.active += 1
        try:
            return await self._serve(request)
        finally:
            self.active -= 1

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        deadline = asyncio.get_running_loop().time() + SCRAPE_DEADLINE
        headers = {"Content-Type": CONTENT_TYPE_LATEST, "Vary": "Accept-Encoding"}
        try:
            async with asyncio.timeout_at(deadline):
                body = await self.exposition.body()
                data = body.plain
                if _wants_gzip(request):
                    data = await self.exposition.gzipped(body)
                    headers["Content-Encoding"] = "gzip"
        except TimeoutError:
            return web.Response(status=503, text="the exposition took too long\n")
        response = web.StreamResponse(headers=headers)
        response.content_length = len(data)
        try:
            async with asyncio.timeout_at(deadline):
                await response.prepare(request)
                view = memoryview(data if request.method != "HEAD" else b"")
                for offset in range(0, len(view), SLICE):
                    chunk = view[offset : offset + SLICE]
                    await self.egress.spend(len(chunk))
                    await response.write(chunk)
                await response.write_eof()
        except TimeoutError:
            log.info("cut off a /metrics scrape unfinished after %ss", SCRAPE_DEADLINE)
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # the scraper went away; nothing to tell it
        return response


async def start_http(
    registry: CollectorRegistry,
    *,
    host: str,
    port: int,
    health: HealthCheck = _always_ok,
    ready: HealthCheck = _always_ok,
    max_scrapes: int = MAX_SCRAPES,
) -> web.AppRunner:
    def check(fn: HealthCheck) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_: web.Request) -> web.Response:
            ok, detail = fn()
            return web.Response(status=200 if ok else 503, text=detail + "\n")

        return handler

    exposition = Exposition(registry)

    async def stop_worker(_: web.Application) -> None:
        exposition.close()

    app = web.Application()
    app.router.add_get("/metrics", MetricsEndpoint(exposition, max_scrapes=max_scrapes).handle)
    app.router.add_get("/healthz", check(health))
    app.router.add_get("/readyz", check(ready))
    app.on_cleanup.append(stop_worker)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
