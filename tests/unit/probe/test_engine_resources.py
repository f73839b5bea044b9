"""Every way out of a probe gives back its socket and its memory, whatever the target does.

The target here accepts and then never reads; the payload is larger than the kernel will
buffer, so the rest of it stays on the probe's side. Descriptors are counted in
/proc/self/fd (the target is a child process: every descriptor here is the probe's) and
Python memory with tracemalloc.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import ssl
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from tcpmonitor.api import ErrorCode, ProbeResult, TcpMonitorSpec, Verdict
from tcpmonitor.probe import ProbeMaterial, ProbePlan, compile_plan, run_probe

from ..probing import contains
from ..servers import never_reading_server, payload_beyond_socket_buffers, serve
from . import protocol_servers

PROBES = 200
AT_ONCE = 20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def big_payload_plan(port: int, timeout: str = "300ms", **spec: object) -> ProbePlan:
    """A plan whose payload no socket buffer holds (the spec's own fields cap it lower)."""
    plan = compile_plan(
        TcpMonitorSpec.model_validate(
            {"host": "127.0.0.1", "port": port, "timeout": timeout, "send": "x", **spec}
        )
    )
    return dataclasses.replace(plan, payload=b"x" * payload_beyond_socket_buffers())


async def settle() -> None:
    """Let the loop run the connection_lost callbacks that close aborted sockets."""
    for _ in range(3):
        await asyncio.sleep(0.02)
    gc.collect()


async def growth(
    first: Callable[[], Awaitable[object]], many: Callable[[], Awaitable[object]]
) -> tuple[int, int]:
    """(descriptors, bytes of Python memory) still held after ``many`` compared with after
    ``first``, which warms up whatever is allocated once."""
    await first()
    await settle()
    tracemalloc.start()
    try:
        fds, (memory, _) = open_fds(), tracemalloc.get_traced_memory()
        await many()
        await settle()
        return open_fds() - fds, tracemalloc.get_traced_memory()[0] - memory
    finally:
        tracemalloc.stop()


def probes_in_batches(plan: ProbePlan) -> Callable[[], Awaitable[list[ProbeResult]]]:
    async def many() -> list[ProbeResult]:
        results: list[ProbeResult] = []
        for _ in range(PROBES // AT_ONCE):
            results += await asyncio.gather(*(run_probe(plan) for _ in range(AT_ONCE)))
        return results

    return many


def test_payload_the_target_never_takes_is_send_timeout_and_leaks_nothing() -> None:
    with never_reading_server() as port:
        plan = big_payload_plan(port)

        async def scenario() -> tuple[ProbeResult, tuple[int, int]]:
            result = await run_probe(plan)
            return result, await growth(lambda: run_probe(plan), probes_in_batches(plan))

        result, (fds, memory) = asyncio.run(scenario())
    assert result.state is Verdict.DOWN
    assert result.error is not None and result.error.code == ErrorCode.SEND_TIMEOUT
    assert "stopped reading" in result.error.message
    assert fds == 0, f"{fds} descriptors leaked by {PROBES} probes"
    assert memory < 1 << 20, f"{memory} bytes kept by {PROBES} probes"


def test_never_read_payload_with_assertions_is_send_timeout_not_read_timeout() -> None:
    with never_reading_server() as port:
        result = asyncio.run(run_probe(big_payload_plan(port, assertions=[contains("OK")])))
    assert result.error is not None and result.error.code == ErrorCode.SEND_TIMEOUT


def test_never_read_payload_over_tls_leaks_nothing(tmp_path: Path, ca: trustme.CA) -> None:
    leaf = ca.issue_cert("localhost")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    with never_reading_server(cert, key) as port:
        plan = big_payload_plan(port, "500ms", tls={"enabled": True, "insecureSkipVerify": True})

        async def scenario() -> tuple[ProbeResult, tuple[int, int]]:
            result = await run_probe(plan)
            return result, await growth(lambda: run_probe(plan), probes_in_batches(plan))

        result, (fds, memory) = asyncio.run(scenario())
    assert result.tls is not None, result.error  # the handshake worked: the send is what stalled
    assert result.error is not None and result.error.code == ErrorCode.SEND_TIMEOUT
    assert fds == 0, f"{fds} descriptors leaked by {PROBES} TLS probes"
    assert memory < 1 << 20, f"{memory} bytes kept by {PROBES} TLS probes"


@pytest.mark.parametrize("tls", [False, True])
def test_cancelled_probes_give_back_their_sockets(
    tmp_path: Path, ca: trustme.CA, tls: bool
) -> None:
    """A monitor removed mid-probe cancels it: the socket goes with it, not at the deadline."""
    cert = key = None
    spec: dict[str, object] = {}
    if tls:
        leaf = ca.issue_cert("localhost")
        cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        spec = {"tls": {"enabled": True, "insecureSkipVerify": True}}
    with never_reading_server(cert, key) as port:
        plan = big_payload_plan(port, "30s", **spec)

        async def cancelled() -> None:
            tasks = [asyncio.create_task(run_probe(plan)) for _ in range(AT_ONCE)]
            await asyncio.sleep(0.3)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        async def scenario() -> tuple[int, int]:
            return await growth(cancelled, cancelled)

        fds, memory = asyncio.run(scenario())
    assert fds == 0, f"{fds} descriptors leaked by {AT_ONCE} cancelled probes"
    assert memory < 1 << 20


def test_tls_handshake_never_answered_gives_back_its_socket() -> None:
    """The target takes the connection and ignores the ClientHello: the deadline ends it."""
    with never_reading_server() as port:
        plan = big_payload_plan(port, "200ms", tls={"enabled": True, "insecureSkipVerify": True})

        async def scenario() -> tuple[ProbeResult, tuple[int, int]]:
            result = await run_probe(plan)
            return result, await growth(lambda: run_probe(plan), probes_in_batches(plan))

        result, (fds, _) = asyncio.run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.TLS_HANDSHAKE_FAILED
    assert fds == 0, f"{fds} descriptors leaked by {PROBES} unanswered handshakes"


def test_peer_hanging_up_mid_payload_is_down() -> None:
    async def hang_up(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read(1024)

    async def scenario() -> ProbeResult:
        async with serve(hang_up) as port:
            return await run_probe(big_payload_plan(port, "5s"))

    result = asyncio.run(scenario())
    assert result.error is not None
    assert result.error.code in (ErrorCode.CONNECTION_CLOSED, ErrorCode.CONNECTION_RESET)


def test_whole_payload_reaches_a_slow_reader_before_a_probe_without_assertions_ends() -> None:
    """Chunked sending must not cut a payload short: a probe without assertions ends only once
    the target has taken every byte."""
    size = payload_beyond_socket_buffers()
    received = 0

    async def slow_reader(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        nonlocal received
        while data := await reader.read(256 * 1024):
            received += len(data)
            await asyncio.sleep(0.001)

    async def scenario() -> ProbeResult:
        async with serve(slow_reader) as port:
            plan = big_payload_plan(port, "20s")
            result = await run_probe(plan)
            await asyncio.sleep(0.2)  # the server reads what the kernel still holds
            return result

    result = asyncio.run(scenario())
    assert result.state is Verdict.UP, result.error
    assert received == size


@pytest.mark.parametrize("trusted", [True, False], ids=["upgraded", "untrusted-refetched"])
def test_starttls_dialogs_give_back_their_sockets(
    ca: trustme.CA, server_context: Callable[..., ssl.SSLContext], trusted: bool
) -> None:
    """The dialog's connection, its TLS layer, and (when verification fails) the second
    connection that runs the dialog again for the certificate: all closed after each probe.
    The server is in this process, so its side is let go before counting."""
    material = ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode()) if trusted else None

    async def scenario() -> tuple[ProbeResult, tuple[int, int]]:
        async with serve(protocol_servers.smtp(server_context())) as port:
            tls = {"enabled": True, "startTLS": True, "serverName": "localhost"}
            spec = {"host": "127.0.0.1", "port": port, "timeout": "2s", "protocol": "SMTP"}
            plan = compile_plan(TcpMonitorSpec.model_validate({**spec, "tls": tls}), material)
            result = await run_probe(plan)

            async def many() -> None:
                await probes_in_batches(plan)()
                await asyncio.sleep(0.3)  # the server's side of the last batch closes

            return result, await growth(lambda: run_probe(plan), many)

    result, (fds, memory) = asyncio.run(scenario())
    if trusted:
        assert result.state is Verdict.UP, result.error
    else:
        assert result.error is not None
        assert result.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE
        assert result.tls is not None and result.tls.certificate is not None
    assert fds <= 0, f"{fds} descriptors leaked by {PROBES} STARTTLS probes"
    assert memory < 1 << 20, f"{memory} bytes kept by {PROBES} STARTTLS probes"
