"""A probe's memory goes back when the probe ends, by reference counting alone.

A result or an exception that keeps a reference cycle through the probe's frames holds the
connection with it (the transport, and for TLS OpenSSL's SSL object and buffers, a hundred
kilobytes or more outside Python's heap) until the cyclic collector runs a full collection.
With ten thousand monitors' objects in the oldest generation that is rare, so a runner
probing failing TLS targets grew by hundreds of megabytes (bench/memory_footprint.py --kind
rich). Each case runs probes with the collector off and then asks it what it found.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trustme

from tcpmonitor.api import ErrorCode, ProbeResult, TcpMonitorSpec, Verdict
from tcpmonitor.probe import ProbeMaterial, compile_plan, run_probe

from ..conftest import ServerContextFactory
from ..probing import contains
from ..servers import blocking_tls_server, close_at_once, closed_port, serve, silent

PROBES = 10
# asyncio's own cycle, on both sides of every connection in this process: a socket transport
# keeps a bound method of itself (``_read_ready_cb``, Python 3.11). It lets go of the socket
# and the protocol when the connection is lost, so what waits for the collector is a shell.
TRANSPORT_SHELL = {
    "_SelectorSocketTransport",
    "method",
    "dict",
    "socket",
    "TransportSocket",
    "tuple",
}


def _not_of_other_loops(garbage: list[object], loop: asyncio.AbstractEventLoop) -> list[object]:
    """The garbage less what hangs off event loops of earlier tests (a closed loop and what
    it held, e.g. a resolver's channel bound to it, can turn into garbage at any moment of a
    long test run); what this loop's probes left is all that counts."""
    ids = {id(o) for o in garbage}
    seeds: list[object] = [
        o for o in garbage if isinstance(o, asyncio.AbstractEventLoop) and o is not loop
    ]
    seeds += [o for o in garbage if getattr(o, "loop", loop) is not loop]
    excluded: set[int] = set()
    while seeds:
        item = seeds.pop()
        if id(item) in excluded:
            continue
        excluded.add(id(item))
        seeds.extend(r for r in gc.get_referents(item) if id(r) in ids)
    return [o for o in garbage if id(o) not in excluded]


@asynccontextmanager
async def no_server() -> AsyncIterator[int]:
    yield closed_port()


async def cyclic_garbage(
    target: Callable[[], AbstractAsyncContextManager[int]],
    spec: dict[str, object],
    material: ProbeMaterial | None = None,
) -> tuple[ProbeResult, Counter[str]]:
    """The last result, and what ``PROBES`` probes left for the cyclic collector, by type."""
    async with target() as port:
        plan = compile_plan(
            TcpMonitorSpec.model_validate({"host": "127.0.0.1", "port": port, **spec}), material
        )
        await run_probe(plan)  # first use: caches, lazily built module state
        gc.collect()
        gc.disable()
        try:
            for _ in range(PROBES):
                result = await run_probe(plan)
            for _ in range(3):  # the callbacks that close aborted transports
                await asyncio.sleep(0.02)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            ours = _not_of_other_loops(gc.garbage, asyncio.get_running_loop())
            garbage = Counter(type(o).__qualname__ for o in ours)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    return result, garbage


CASES: dict[str, tuple[Callable[[], AbstractAsyncContextManager[int]], dict[str, object], str]] = {
    "connect": (lambda: serve(close_at_once), {"timeout": "2s"}, "Up"),
    "refused": (no_server, {"timeout": "2s"}, ErrorCode.CONNECTION_REFUSED.value),
    "read timeout": (
        lambda: serve(silent),
        {"timeout": "200ms", "assertions": [contains("OK")]},
        ErrorCode.READ_TIMEOUT.value,
    ),
    "tls on a plain listener that hangs up": (
        lambda: serve(close_at_once),
        {"timeout": "2s", "tls": {"enabled": True}},
        ErrorCode.CONNECTION_RESET.value,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_plain_probes_leave_no_reference_cycles(case: str) -> None:
    target, spec, outcome = CASES[case]
    result, garbage = asyncio.run(cyclic_garbage(target, spec))
    assert (result.error.code if result.error else result.state.value) == outcome
    left = {kind: n for kind, n in garbage.items() if kind not in TRANSPORT_SHELL}
    assert not left, f"{PROBES} probes ({case}) left cycles: {garbage.most_common(12)}"


@pytest.mark.parametrize("trusted", [True, False])
def test_tls_probes_leave_no_reference_cycles(
    ca: trustme.CA, other_ca: trustme.CA, server_context: ServerContextFactory, trusted: bool
) -> None:
    """A verified handshake with a reply, and one whose chain fails (the certificate is then
    read over a second connection)."""
    context = server_context("localhost", issuer=ca if trusted else other_ca)
    spec = {"timeout": "2s", "tls": {"enabled": True, "serverName": "localhost"}}
    spec["assertions"] = [contains("PONG")]
    material = ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode())

    async def target() -> AsyncIterator[int]:
        # Blocking OpenSSL on a thread: asyncio's own server side would leave cycles of its own.
        with blocking_tls_server(context, b"+PONG\r\n") as port:
            yield port

    result, garbage = asyncio.run(cyclic_garbage(asynccontextmanager(target), spec, material))
    assert result.state is (Verdict.UP if trusted else Verdict.DOWN), result.error
    left = {kind: n for kind, n in garbage.items() if kind not in TRANSPORT_SHELL}
    assert not left, f"{PROBES} TLS probes left cycles: {garbage.most_common(12)}"


@pytest.mark.parametrize("trusted", [True, False])
def test_handshake_only_probes_leave_no_reference_cycles(
    ca: trustme.CA, other_ca: trustme.CA, server_context: ServerContextFactory, trusted: bool
) -> None:
    """The same without a reply to read: the handshake is made on the socket itself
    (probe/tls_socket.py), and its failure holds that socket's SSL object."""
    context = server_context("localhost", issuer=ca if trusted else other_ca)
    spec = {"timeout": "2s", "tls": {"enabled": True, "serverName": "localhost"}}
    material = ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode())

    async def target() -> AsyncIterator[int]:
        with blocking_tls_server(context) as port:
            yield port

    result, garbage = asyncio.run(cyclic_garbage(asynccontextmanager(target), spec, material))
    assert result.state is (Verdict.UP if trusted else Verdict.DOWN), result.error
    left = {kind: n for kind, n in garbage.items() if kind not in TRANSPORT_SHELL}
    assert not left, f"{PROBES} TLS probes left cycles: {garbage.most_common(12)}"
