"""tls.pin against real servers: fingerprints change with every renewal, public-key pins only
with the key, issuer pins with the CA; a mismatch is Down before anything is sent."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from tcpmonitor.api import ErrorCode, ProbeResult, Verdict
from tcpmonitor.probe import ProbeMaterial

from ..probing import contains, probe
from ..servers import blocking_tls_server
from .chains import Issued, issue, rsa_key, server_context
from .test_chain import trusting


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Pin Root")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return root.issue("Pin Intermediate", ca=True)


def pinned(
    server: ssl.SSLContext, material: ProbeMaterial | None, pin: dict[str, object], **tls: object
) -> ProbeResult:
    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(
                port,
                material,
                host="localhost",
                tls={"enabled": True, "pin": pin, **tls},
                assertions=[contains("hello")],
            )

    return asyncio.run(scenario())


def facts(leaf: Issued, *chain: Issued, root: Issued) -> tuple[str, str]:
    """(fingerprint, spki pin) of the leaf as a probe reports them."""
    result = pinned(server_context(leaf, *chain), trusting(root), {"issuer": "x"})
    assert result.tls is not None and result.tls.chain
    return result.tls.chain[0].sha256_fingerprint, result.tls.chain[0].spki_sha256 or ""


def test_renewal_with_the_same_key_keeps_the_key_pin_not_the_fingerprint(
    root: Issued, intermediate: Issued
) -> None:
    key = rsa_key()
    first = intermediate.issue("leaf", key=key)
    fingerprint, spki = facts(first, intermediate, root=root)
    renewed = intermediate.issue("leaf", key=key)
    server = server_context(renewed, intermediate)

    by_key = pinned(server, trusting(root), {"spkiSha256": [spki]})
    assert by_key.state is Verdict.UP, by_key.error
    # The curl/HPKP spelling is accepted too.
    by_curl = pinned(server, trusting(root), {"spkiSha256": ["sha256//" + spki]})
    assert by_curl.state is Verdict.UP, by_curl.error

    by_fingerprint = pinned(server, trusting(root), {"sha256Fingerprints": [fingerprint]})
    assert by_fingerprint.error is not None
    assert by_fingerprint.error.code == ErrorCode.TLS_FINGERPRINT_MISMATCH
    # Nothing was sent to the server that failed the pin: no response, no assertion read.
    assert by_fingerprint.response is None or by_fingerprint.response.bytes == 0

    # Colons and case do not matter; a backup pin listed first does not hurt.
    lower = fingerprint.replace(":", "").lower()
    first_server = server_context(first, intermediate)
    both = pinned(first_server, trusting(root), {"sha256Fingerprints": ["00" * 32, lower]})
    assert both.state is Verdict.UP, both.error


def test_a_new_key_fails_the_key_pin(root: Issued, intermediate: Issued) -> None:
    _, spki = facts(intermediate.issue("leaf"), intermediate, root=root)
    rekeyed = server_context(intermediate.issue("leaf"), intermediate)
    result = pinned(rekeyed, trusting(root), {"spkiSha256": [spki]})
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_PUBLIC_KEY_PIN_MISMATCH
    assert "leaf spkiSha256" in result.error.message


def test_chain_scope_pins_the_intermediate(root: Issued, intermediate: Issued) -> None:
    server = server_context(intermediate.issue("leaf"), intermediate)
    probe_facts = pinned(server, trusting(root), {"issuer": "CN=Pin Intermediate"})
    assert probe_facts.state is Verdict.UP, probe_facts.error
    assert probe_facts.tls is not None
    intermediate_spki = probe_facts.tls.chain[1].spki_sha256
    chain_pin = {"spkiSha256": [intermediate_spki], "scope": "Chain"}
    assert pinned(server, trusting(root), chain_pin).state is Verdict.UP
    leaf_only = pinned(server, trusting(root), {"spkiSha256": [intermediate_spki]})
    assert leaf_only.error is not None
    assert leaf_only.error.code == ErrorCode.TLS_PUBLIC_KEY_PIN_MISMATCH


def test_issuer_pin(root: Issued, intermediate: Issued) -> None:
    server = server_context(root.issue("leaf"))
    result = pinned(server, trusting(root), {"issuer": "CN=Pin Intermediate"})
    assert result.error is not None and result.error.code == ErrorCode.TLS_ISSUER_MISMATCH
    assert "issued by CN=Pin Root" in result.error.message


def test_pin_makes_a_self_signed_certificate_safe_under_insecure_skip_verify() -> None:
    self_signed = issue("Self", ca=False)
    server = server_context(self_signed)
    fingerprint = pinned(server, None, {"issuer": "CN=Self"}, insecureSkipVerify=True)
    assert fingerprint.state is Verdict.UP, fingerprint.error
    assert fingerprint.tls is not None and fingerprint.tls.chain_trusted is False
    good = fingerprint.tls.chain[0].sha256_fingerprint
    ok = pinned(server, None, {"sha256Fingerprints": [good]}, insecureSkipVerify=True)
    assert ok.state is Verdict.UP, ok.error
    impostor = server_context(issue("Self", ca=False))
    bad = pinned(impostor, None, {"sha256Fingerprints": [good]}, insecureSkipVerify=True)
    assert bad.error is not None and bad.error.code == ErrorCode.TLS_FINGERPRINT_MISMATCH
