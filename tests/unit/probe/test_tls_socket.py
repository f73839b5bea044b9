"""A probe that only handshakes does so on its socket (probe/tls_socket.py), and its result is
the one asyncio's TLS transport gives: the same verdicts, codes, messages, certificate, chain
and phases, for a good server and for every way a handshake goes wrong. Each case runs both
ways against the same real server, and checks that the direct way was the one taken."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import trustme

from tcpmonitor.api import ErrorCode, ProbeResult, TcpMonitorSpec, Verdict
from tcpmonitor.probe import ProbeMaterial, compile_plan
from tcpmonitor.probe.engine import _Attempt

from ...hostile.certificates import hostile_certificate
from ..conftest import ServerContextFactory
from ..servers import blocking_tls_server, never_reading_server, threaded_server

ServerFactory = Callable[[], AbstractContextManager[int]]


def _dumped(result: ProbeResult) -> dict[str, Any]:
    """The result less what differs from one probe to the next: the clock."""
    dumped = result.model_dump(mode="json", by_alias=True)
    dumped.pop("startedAt")
    dumped["timings"] = sorted(k for k, v in dumped["timings"].items() if v is not None)
    certificate = (dumped.get("tls") or {}).get("certificate")
    if certificate:
        certificate["daysRemaining"] = round(certificate["daysRemaining"], 1)
    return dumped


async def _attempt(plan: Any, direct: bool) -> ProbeResult:
    attempt = _Attempt(plan, direct_tls=direct)
    result = await attempt.run()
    assert (attempt.tls_socket is not None) is direct, "the path asked for was not taken"
    return result


def both_ways(
    server: ServerFactory, material: ProbeMaterial | None = None, **spec: Any
) -> tuple[ProbeResult, ProbeResult]:
    """(direct, through asyncio's transport): one probe each, against the same server."""
    spec.setdefault("timeout", "2s")

    async def scenario() -> tuple[ProbeResult, ProbeResult]:
        with server() as port:
            plan = compile_plan(
                TcpMonitorSpec.model_validate({"host": "127.0.0.1", "port": port, **spec}),
                material,
            )
            return await _attempt(plan, True), await _attempt(plan, False)

    return asyncio.run(scenario())


def assert_same(direct: ProbeResult, transport: ProbeResult) -> None:
    assert _dumped(direct) == _dumped(transport)


def trusting(ca: trustme.CA) -> ProbeMaterial:
    return ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode())


def tls_server(context: ssl.SSLContext) -> ServerFactory:
    return lambda: blocking_tls_server(context)


def test_verified_certificate(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    direct, transport = both_ways(
        tls_server(server_context()), trusting(ca), tls={"enabled": True, "serverName": "localhost"}
    )
    assert direct.state is Verdict.UP, direct.error
    assert direct.tls is not None and direct.tls.verified is True and direct.tls.chain
    assert direct.timings.tls is not None and direct.timings.data is None
    assert_same(direct, transport)


def test_untrusted_certificate_is_still_read(
    other_ca: trustme.CA, ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = tls_server(server_context(issuer=other_ca))
    direct, transport = both_ways(server, trusting(ca), tls={"enabled": True})
    assert direct.error is not None and direct.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE
    # Read over a side connection, which a server serving one connection at a time answers
    # only once the failed one is closed.
    assert direct.tls is not None and direct.tls.certificate is not None
    assert_same(direct, transport)


def test_host_name_mismatch(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    server = tls_server(server_context("other.example"))
    direct, transport = both_ways(
        server, trusting(ca), tls={"enabled": True, "serverName": "localhost"}
    )
    assert direct.error is not None and direct.error.code == ErrorCode.TLS_HOSTNAME_MISMATCH
    assert_same(direct, transport)


def test_insecure_skip_verify_still_judges_the_chain(
    other_ca: trustme.CA, ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = tls_server(server_context(issuer=other_ca))
    direct, transport = both_ways(
        server, trusting(ca), tls={"enabled": True, "insecureSkipVerify": True}
    )
    assert direct.state is Verdict.UP, direct.error
    assert direct.tls is not None and direct.tls.chain_trusted is False
    assert_same(direct, transport)


def test_pin_mismatch(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    pin = {"spkiSha256": ["A" * 43 + "="]}
    direct, transport = both_ways(
        tls_server(server_context()), trusting(ca), tls={"enabled": True, "pin": pin}
    )
    assert direct.error is not None and direct.error.code == ErrorCode.TLS_PUBLIC_KEY_PIN_MISMATCH
    assert_same(direct, transport)


def test_server_refusing_the_version(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    server = tls_server(server_context(max_version=ssl.TLSVersion.TLSv1_2))
    direct, transport = both_ways(
        server, trusting(ca), tls={"enabled": True, "minVersion": "TLS1.3"}
    )
    assert direct.error is not None and direct.error.code == ErrorCode.TLS_VERSION_TOO_OLD
    assert_same(direct, transport)


def test_verified_certificate_whose_names_python_cannot_decode(tmp_path: Path) -> None:
    cert = hostile_certificate(
        dns_names=["bad-Xname.example"], patches={b"bad-Xname": b"bad-\xe9name"}
    )
    direct, transport = both_ways(
        tls_server(cert.server_context(tmp_path)),
        ProbeMaterial(ca_pem=cert.cert_pem.decode()),
        tls={"enabled": True, "serverName": "localhost"},
    )
    assert direct.state is Verdict.DOWN
    assert direct.tls is not None and direct.tls.certificate is not None
    assert_same(direct, transport)


def test_a_certificate_that_did_not_decode_is_decoded_again(tmp_path: Path) -> None:
    # Only certificates that decoded are remembered as such: the next probe of this one
    # must fail the same way, not pass because the decode was skipped.
    cert = hostile_certificate(
        dns_names=["bad-Xname.example"], patches={b"bad-Xname": b"bad-\xe9name"}
    )
    server = tls_server(cert.server_context(tmp_path))
    material = ProbeMaterial(ca_pem=cert.cert_pem.decode())
    tls = {"enabled": True, "serverName": "localhost"}
    first, _ = both_ways(server, material, tls=tls)
    second, _ = both_ways(server, material, tls=tls)
    assert first.state is second.state is Verdict.DOWN
    assert first.tls is not None and first.tls.version is None  # the decode ended the handshake
    dumped = [_dumped(result) for result in (first, second)]
    for one in dumped:
        one.pop("remoteAddress")  # two servers, two ports
    assert dumped[0] == dumped[1]


def _hang_up_after_hello(conn: socket.socket) -> None:
    conn.recv(4096)


def _reset_after_hello(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _not_tls(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    conn.recv(4096)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (_hang_up_after_hello, ErrorCode.CONNECTION_RESET),
        (_reset_after_hello, ErrorCode.CONNECTION_RESET),
        (_not_tls, ErrorCode.TLS_HANDSHAKE_FAILED),
    ],
)
def test_peer_ending_the_handshake(
    ca: trustme.CA, answer: Callable[[socket.socket], None], code: ErrorCode
) -> None:
    direct, transport = both_ways(
        lambda: threaded_server(answer), trusting(ca), tls={"enabled": True}
    )
    assert direct.error is not None and direct.error.code == code, direct.error
    assert_same(direct, transport)


def test_peer_that_never_answers_times_out_at_the_deadline() -> None:
    direct, transport = both_ways(
        never_reading_server, timeout="300ms", tls={"enabled": True, "insecureSkipVerify": True}
    )
    assert direct.error is not None and direct.error.code == ErrorCode.TLS_HANDSHAKE_FAILED
    assert "not finished within 0.3s" in direct.error.message
    assert_same(direct, transport)


async def _open_fds() -> int:
    """Descriptors open once the callbacks that close aborted transports have run."""
    for _ in range(3):
        await asyncio.sleep(0.02)
    return len(os.listdir("/proc/self/fd"))


def test_every_way_out_gives_back_the_socket(
    ca: trustme.CA, other_ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    """Up, a verify failure, a timeout and a cancellation: the socket is closed when the
    probe ends, not when its objects are collected (they are all kept here until counted)."""
    good = server_context()
    untrusted = server_context(issuer=other_ca)
    kept: list[_Attempt] = []

    async def probes(port: int, deadline: str, cancel_after: float | None = None) -> None:
        spec = {"host": "127.0.0.1", "port": port, "timeout": deadline, "tls": {"enabled": True}}
        plan = compile_plan(TcpMonitorSpec.model_validate(spec), trusting(ca))
        attempts = [_Attempt(plan) for _ in range(10)]
        tasks = [asyncio.create_task(attempt.run()) for attempt in attempts]
        if cancel_after is not None:
            await asyncio.sleep(cancel_after)
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(attempt.tls_socket is not None for attempt in attempts)
        kept.extend(attempts)

    async def scenario() -> int:
        with (
            blocking_tls_server(good) as up,
            blocking_tls_server(untrusted) as down,
            never_reading_server() as silent,
        ):
            await probes(up, "2s")  # first use: whatever is opened once
            before = await _open_fds()
            await probes(up, "2s")
            await probes(down, "2s")
            await probes(silent, "200ms")
            await probes(silent, "30s", cancel_after=0.2)
            return await _open_fds() - before

    assert asyncio.run(scenario()) == 0
    assert len(kept) == 50
