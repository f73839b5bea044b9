"""Two verdicts instead of one bit: the chain trusted, and the host name verified, each with its
reason, both also under insecureSkipVerify and when the other one failed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tcpmonitor.api import ErrorCode, ProbeResult, Protocol, Verdict
from tcpmonitor.probe import ProbeMaterial
from tcpmonitor.probe import engine as engine_module

from ..probing import probe
from ..servers import blocking_tls_server, closed_port, serve
from . import protocol_servers
from .chains import Issued, issue, server_context
from .test_chain import tls_probe, trusting


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Verdict Root")


@pytest.fixture
def side_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the side handshakes (a second connection), by the context's role."""
    calls: list[str] = []
    original = engine_module._Attempt._side_handshake

    async def counting(self: Any, family: int, sockaddr: Any, context: Any) -> Any:
        assert self.plan.tls is not None
        calls.append("trusting" if context is self.plan.tls.trusting else "inspecting")
        return await original(self, family, sockaddr, context)

    monkeypatch.setattr(engine_module._Attempt, "_side_handshake", counting)
    return calls


def test_sound_certificate_both_verdicts_true(root: Issued, side_connections: list[str]) -> None:
    result = tls_probe(server_context(root.issue("leaf")), trusting(root))
    assert result.state is Verdict.UP, result.error
    tls = result.tls
    assert tls is not None and tls.verified
    assert (tls.chain_trusted, tls.chain_error) == (True, None)
    assert (tls.hostname_verified, tls.hostname_error) == (True, None)
    assert side_connections == []  # verified on the probe's own connection


def test_wrong_name_on_a_trusted_chain(root: Issued) -> None:
    result = tls_probe(
        server_context(root.issue("leaf", dns_names=("other.example",))), trusting(root)
    )
    assert result.error is not None and result.error.code == ErrorCode.TLS_HOSTNAME_MISMATCH
    assert result.error.message == (
        "certificate verify failed: Hostname mismatch, certificate is not valid for 'localhost'."
    )
    tls = result.tls
    assert tls is not None and not tls.verified and tls.verify_error
    assert tls.chain_trusted is True
    assert tls.hostname_verified is False and "not valid for 'localhost'" in tls.hostname_error  # type: ignore[operator]
    assert tls.chain and tls.chain[0].subject == "CN=leaf"


def test_untrusted_chain_with_a_wrong_name_reports_both(root: Issued) -> None:
    stranger = issue("Stranger Root")
    leaf = stranger.issue("leaf", dns_names=("other.example",))
    result = tls_probe(server_context(leaf), trusting(root))
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE
    tls = result.tls
    assert tls is not None
    assert (
        tls.chain_trusted is False and tls.chain_error == "unable to get local issuer certificate"
    )
    assert tls.hostname_verified is False


def test_insecure_skip_verify_still_judges_both(root: Issued, side_connections: list[str]) -> None:
    stranger = issue("Self Signed Root")
    context = server_context(stranger.issue("leaf"))
    first = tls_probe(context, insecureSkipVerify=True)
    assert first.state is Verdict.UP, first.error
    tls = first.tls
    assert tls is not None and not tls.verified and tls.verify_error is None
    assert tls.chain_trusted is False
    assert tls.chain_error == "unable to get local issuer certificate"
    assert tls.hostname_verified is True
    assert side_connections == ["trusting"]
    # The same chain again: the verdict is remembered, no second connection.
    again = tls_probe(context, insecureSkipVerify=True)
    assert again.tls is not None and again.tls.chain_trusted is False
    assert again.tls.chain_error == tls.chain_error
    assert side_connections == ["trusting"]
    # A new certificate is a new chain: judged again.
    tls_probe(server_context(stranger.issue("leaf")), insecureSkipVerify=True)
    assert side_connections == ["trusting", "trusting"]


def test_insecure_skip_verify_with_a_trusted_chain_and_a_wrong_name(root: Issued) -> None:
    leaf = root.issue("leaf", dns_names=("other.example",))
    result = tls_probe(server_context(leaf), trusting(root), insecureSkipVerify=True)
    assert result.state is Verdict.UP, result.error
    tls = result.tls
    assert tls is not None and not tls.verified
    assert (tls.chain_trusted, tls.hostname_verified) == (True, False)


def test_insecure_expired_leaf_is_untrusted_with_the_reason(root: Issued) -> None:
    leaf = root.issue("leaf", days=(-30, -1))
    result = tls_probe(server_context(leaf), trusting(root), insecureSkipVerify=True)
    assert result.state is Verdict.DEGRADED
    assert result.tls is not None and result.tls.chain_trusted is False
    assert result.tls.chain_error == "certificate has expired"


def test_verdicts_after_starttls_under_insecure_skip_verify(
    root: Issued, side_connections: list[str]
) -> None:
    leaf = root.issue("mail", dns_names=("example.com",))
    context = server_context(leaf)
    tls = {"enabled": True, "startTLS": True, "serverName": "example.com"}

    async def scenario(material: ProbeMaterial | None, **extra: object) -> ProbeResult:
        async with serve(protocol_servers.smtp(context)) as port:
            return await probe(port, material, protocol=Protocol.SMTP, tls={**tls, **extra})

    public = asyncio.run(scenario(None, insecureSkipVerify=True))
    assert public.state is Verdict.UP, public.error
    assert public.tls is not None
    assert public.tls.chain_trusted is False and public.tls.hostname_verified is True
    own = asyncio.run(scenario(trusting(root), insecureSkipVerify=True))
    assert own.tls is not None and own.tls.chain_trusted is True
    assert side_connections == ["trusting", "trusting"]  # one per trust store


def test_server_gone_before_the_side_check_leaves_the_chain_unjudged(root: Issued) -> None:
    # The side connection finds nothing listening: the verdict is unknown, and says why.
    stranger = issue("Vanishing Root")
    context = server_context(stranger.issue("leaf"))

    async def scenario() -> ProbeResult:
        with blocking_tls_server(context) as port:
            original = engine_module._Attempt._side_handshake

            async def closed(self: Any, family: int, sockaddr: Any, ctx: Any) -> Any:
                return await original(self, family, ("127.0.0.1", closed_port()), ctx)

            engine_module._Attempt._side_handshake = closed  # type: ignore[method-assign]
            try:
                return await probe(
                    port, None, host="localhost", tls={"enabled": True, "insecureSkipVerify": True}
                )
            finally:
                engine_module._Attempt._side_handshake = original  # type: ignore[method-assign]

    result = asyncio.run(scenario())
    assert result.state is Verdict.UP
    assert result.tls is not None and result.tls.chain_trusted is None
    assert result.tls.chain_error is not None and result.tls.chain_error.startswith("not checked")
