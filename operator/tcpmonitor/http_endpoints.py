"""The process's HTTP surface: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

One small aiohttp server (aiohttp already comes with kopf) on the event loop that does the
probing, so a liveness check that answers proves that loop is not stuck.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HealthCheck = Callable[[], tuple[bool, str]]


def _always_ok() -> tuple[bool, str]:
    return True, "ok"


async def start_http(
    registry: CollectorRegistry,
    *,
    host: str,
    port: int,
    health: HealthCheck = _always_ok,
    ready: HealthCheck = _always_ok,
) -> web.AppRunner:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def check(fn: HealthCheck) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_: web.Request) -> web.Response:
            ok, detail = fn()
            return web.Response(status=200 if ok else 503, text=detail + "\n")

        return handler

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", check(health))
    app.router.add_get("/readyz", check(ready))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
