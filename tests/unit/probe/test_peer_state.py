"""The chain and staple read from OpenSSL after the handshake (probe/peer_state.py) are what the
handshake hook reads, on real servers; and where the readers are not proven the hook still
serves, with the same result."""

from __future__ import annotations

import _ssl
import asyncio
import ssl
from collections.abc import Iterator

import pytest
from cryptography.x509 import ocsp

from tcpmonitor.api import ProbeResult, TlsVersion, Verdict
from tcpmonitor.api.result import RevocationStatus
from tcpmonitor.probe import ProbeMaterial, peer_state, stapling
from tcpmonitor.probe.handshake_capture import (
    MAX_STAPLE,
    _on_message,
    capture_chains,
    captured_chain,
    captured_staple,
)
from tcpmonitor.probe.tls import build_contexts

from ..probing import probe
from ..servers import blocking_tls_server
from .chains import Issued, issue, server_context
from .ocsp_servers import ocsp_response, staple_from, stapling_server

VERSIONS = ["tls1_2", "tls1_3"]


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Peer State Root")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return root.issue("Peer State Intermediate", ca=True)


@pytest.fixture(scope="module")
def leaf(intermediate: Issued) -> Issued:
    return intermediate.issue("leaf")


def hooked_context() -> ssl.SSLContext:
    """A context that asks for a staple and keeps the hook, so both readers see one handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert stapling.request_stapling(context) is None
    capture_chains(context)
    return context


def both_readings(port: int) -> tuple[object, ...]:
    async def handshake() -> tuple[object, ...]:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=hooked_context(), server_hostname="localhost"
        )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            return (
                peer_state.read_chain(ssl_object),
                captured_chain(ssl_object),
                peer_state.read_staple(ssl_object, MAX_STAPLE),
                captured_staple(ssl_object),
            )
        finally:
            writer.close()

    return asyncio.run(handshake())


def test_the_readers_are_proven_on_this_python() -> None:
    # Everything below relies on it; if a CPython layout ever turns them off, this says so.
    assert peer_state.prove(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)) is None
    assert peer_state.readers_work(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


def test_a_pointer_at_the_wrong_place_is_refused_before_it_is_used() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for offset in (peer_state.SSL_OFFSET - 8, peer_state.SSL_OFFSET + 8):
        assert peer_state.prove(context, offset) is not None


@pytest.mark.parametrize("version", VERSIONS)
def test_chain_and_staple_equal_what_the_hook_read(
    root: Issued, intermediate: Issued, leaf: Issued, version: str
) -> None:
    staple = ocsp_response(leaf, intermediate, ocsp.OCSPCertStatus.REVOKED)
    with stapling_server(leaf, [intermediate, root], staple, version) as port:
        chain, hooked, read_staple, hooked_staple = both_readings(port)
    assert chain == ([leaf.der, intermediate.der, root.der], 3)
    assert hooked == chain
    assert read_staple == hooked_staple == staple


@pytest.mark.parametrize("version", VERSIONS)
def test_no_staple_reads_as_none(leaf: Issued, intermediate: Issued, version: str) -> None:
    with stapling_server(leaf, [intermediate], None, version) as port:
        chain, hooked, read_staple, hooked_staple = both_readings(port)
    assert chain == hooked == ([leaf.der, intermediate.der], 2)
    assert read_staple is None and hooked_staple is None


def test_a_staple_over_the_bound_reads_as_empty_like_the_hook(
    leaf: Issued, intermediate: Issued
) -> None:
    oversized = b"\x30" * (MAX_STAPLE + 1)
    with blocking_tls_server(staple_from(server_context(leaf, intermediate), oversized)) as port:
        chain, hooked, read_staple, hooked_staple = both_readings(port)
    assert chain == hooked == ([leaf.der, intermediate.der], 2)
    assert read_staple == hooked_staple == b""


def _hook_of(context: ssl.SSLContext) -> object:
    return _ssl._SSLContext._msg_callback.__get__(context)  # type: ignore[attr-defined]


@pytest.fixture
def hook_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process as it runs where the proof failed: contexts built from now on keep the hook."""
    build_contexts.cache_clear()  # contexts built before were built without the hook
    monkeypatch.setattr(peer_state._State, "proven", False)
    monkeypatch.setattr(peer_state._State, "disabled", None)
    peer_state.fall_back("forced by the test")
    try:
        yield
    finally:
        build_contexts.cache_clear()


def stapled_probe(
    root: Issued, leaf: Issued, chain: list[Issued], staple: bytes, version: str
) -> ProbeResult:
    async def scenario() -> ProbeResult:
        with stapling_server(leaf, chain, staple, version) as port:
            return await probe(
                port,
                ProbeMaterial(ca_pem=root.pem.decode()),
                tls={"enabled": True, "serverName": "localhost"},
            )

    return asyncio.run(scenario())


def test_proven_readers_drop_the_hook_from_the_contexts() -> None:
    contexts = build_contexts(TlsVersion.TLS1_2, None, None)
    assert peer_state.active()
    assert _hook_of(contexts.trusting) is None and _hook_of(contexts.inspecting) is None


@pytest.mark.parametrize("version", VERSIONS)
def test_where_the_readers_fall_back_the_hook_gives_the_same_result(
    root: Issued, intermediate: Issued, leaf: Issued, version: str, request: pytest.FixtureRequest
) -> None:
    staple = ocsp_response(leaf, intermediate, ocsp.OCSPCertStatus.REVOKED)  # one, for its dates
    read = stapled_probe(root, leaf, [intermediate], staple, version)
    request.getfixturevalue("hook_only")
    assert not peer_state.active()
    assert not peer_state.readers_work(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    contexts = build_contexts(TlsVersion.TLS1_2, root.pem.decode(), None)
    assert _hook_of(contexts.trusting) is _on_message
    hooked = stapled_probe(root, leaf, [intermediate], staple, version)
    for result in (read, hooked):
        assert result.state is Verdict.DOWN, result.error
        assert result.tls is not None and result.tls.revocation is not None
        assert result.tls.revocation.status is RevocationStatus.REVOKED
    assert read.tls is not None and hooked.tls is not None
    assert hooked.tls.chain == read.tls.chain and len(read.tls.chain) == 2
    assert (hooked.tls.chain_length, hooked.tls.chain_expiry) == (
        read.tls.chain_length,
        read.tls.chain_expiry,
    )
    assert hooked.tls.revocation == read.tls.revocation
