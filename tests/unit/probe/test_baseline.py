"""tls.baseline against real servers: weak keys, weak signatures, a cipher without forward
secrecy, an old version; each rule Fail, Degrade or Ignore, and nothing without baseline."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from cryptography.hazmat.primitives import hashes

from tcpmonitor.api import ErrorCode, ProbeResult, Verdict, WarningCode
from tcpmonitor.probe.baseline import cipher_weakness

from ..probing import probe
from ..servers import blocking_tls_server
from .chains import Issued, ec_key, issue, rsa_key, server_context
from .test_chain import trusting

INSECURE = {"insecureSkipVerify": True}


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Baseline Root")


def tls_probe(server: ssl.SSLContext, **tls: object) -> ProbeResult:
    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(port, None, host="localhost", tls={"enabled": True, **tls})

    return asyncio.run(scenario())


def codes(result: ProbeResult) -> list[str]:
    return [w.code for w in result.warnings]


def test_without_baseline_nothing_changes(root: Issued) -> None:
    weak = server_context(
        root.issue("weak", key=rsa_key(1024), hash_algorithm=hashes.SHA1()), seclevel0=True
    )
    assert tls_probe(weak, **INSECURE).state is Verdict.UP
    # And the probe still offers only Python's cipher list: an RSA-key-exchange-only server
    # fails the handshake, as it did before the baseline existed.
    rsa_only = limited_to(server_context(root.issue("leaf")), "AES128-GCM-SHA256")
    result = tls_probe(rsa_only, **INSECURE)
    assert result.error is not None and result.error.code == ErrorCode.TLS_HANDSHAKE_FAILED


def test_weak_key_degrades_by_default_and_fails_when_asked(root: Issued) -> None:
    server = server_context(root.issue("weak", key=rsa_key(1024)), seclevel0=True)
    degraded = tls_probe(server, baseline={}, **INSECURE)
    assert degraded.state is Verdict.DEGRADED
    assert codes(degraded) == [WarningCode.TLS_WEAK_KEY]
    assert "1024-bit RSA key, below 2048 bits" in degraded.warnings[0].message
    failed = tls_probe(server, baseline={"keySize": {"action": "Fail"}}, **INSECURE)
    assert failed.error is not None and failed.error.code == ErrorCode.TLS_WEAK_KEY
    ignored = tls_probe(server, baseline={"keySize": {"action": "Ignore"}}, **INSECURE)
    assert ignored.state is Verdict.UP


def test_key_size_floor_for_ec_keys(root: Issued) -> None:
    server = server_context(root.issue("ec", key=ec_key()))
    assert tls_probe(server, baseline={}, **INSECURE).state is Verdict.UP
    strict = tls_probe(server, baseline={"keySize": {"minEcBits": 384}}, **INSECURE)
    assert codes(strict) == [WarningCode.TLS_WEAK_KEY]
    assert "256-bit EC key" in strict.warnings[0].message


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.MD5()])
def test_weak_signature(root: Issued, algorithm: hashes.HashAlgorithm) -> None:
    server = server_context(root.issue("old", hash_algorithm=algorithm), seclevel0=True)
    result = tls_probe(server, baseline={"signature": {"action": "Fail"}}, **INSECURE)
    assert result.error is not None and result.error.code == ErrorCode.TLS_WEAK_SIGNATURE
    assert f"{algorithm.name}WithRSAEncryption" in result.error.message


def test_a_self_signed_root_with_sha1_is_exempt() -> None:
    old_root = issue("SHA-1 Root", hash_algorithm=hashes.SHA1())
    server = server_context(old_root.issue("leaf"), old_root, seclevel0=True)
    result = tls_probe(server, baseline={}, **INSECURE)
    assert result.state is Verdict.UP, (result.error, result.warnings)
    assert result.tls is not None and result.tls.chain[1].signature_algorithm == (
        "sha1WithRSAEncryption"
    )


def limited_to(context: ssl.SSLContext, ciphers: str) -> ssl.SSLContext:
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


def test_cipher_without_forward_secrecy(root: Issued) -> None:
    rsa_only = limited_to(server_context(root.issue("leaf")), "AES128-GCM-SHA256")
    result = tls_probe(rsa_only, baseline={"cipher": {"action": "Fail"}}, **INSECURE)
    assert result.error is not None and result.error.code == ErrorCode.TLS_WEAK_CIPHER
    assert result.error.message == (
        "cipher AES128-GCM-SHA256 is not forward secret (no ECDHE/DHE key exchange)"
    )
    ecdhe = limited_to(server_context(root.issue("leaf")), "ECDHE-RSA-AES128-GCM-SHA256")
    assert tls_probe(ecdhe, baseline={"cipher": {"action": "Fail"}}, **INSECURE).state is (
        Verdict.UP
    )


def test_old_version(root: Issued) -> None:
    server = server_context(root.issue("leaf"))
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    rule = {"version": {"minimum": "TLS1.3"}}
    result = tls_probe(server, baseline=rule, **INSECURE)
    assert codes(result) == [WarningCode.TLS_OLD_VERSION]
    assert result.warnings[0].message == "negotiated TLSv1.2, below the baseline's TLS1.3"
    assert tls_probe(server, baseline={}, **INSECURE).state is Verdict.UP


def test_a_fail_finding_on_a_probe_already_down_is_kept_as_a_warning(root: Issued) -> None:
    stranger = issue("Stranger")
    server = server_context(stranger.issue("weak", key=rsa_key(1024)), seclevel0=True)

    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(
                port,
                trusting(root),
                host="localhost",
                tls={"enabled": True, "baseline": {"keySize": {"action": "Fail"}}},
            )

    result = asyncio.run(scenario())
    assert result.error is not None and result.error.code != ErrorCode.TLS_WEAK_KEY
    assert WarningCode.TLS_WEAK_KEY in codes(result)


@pytest.mark.parametrize(
    ("version", "cipher", "weak"),
    [
        ("TLSv1.3", "TLS_AES_256_GCM_SHA384", None),
        ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", None),
        ("TLSv1.2", "DHE-RSA-AES256-GCM-SHA384", None),
        ("TLSv1.2", "AES256-SHA", "not forward secret"),
        ("TLSv1.2", "ECDH-RSA-AES128-SHA", "not forward secret"),
        ("TLSv1.2", "RC4-SHA", "weak (RC4)"),
        ("TLSv1.2", "DES-CBC3-SHA", "weak (3DES, DES)"),
        ("TLSv1.2", "ECDHE-RSA-NULL-SHA", "weak (NULL)"),
        ("TLSv1.2", "ADH-AES128-SHA", "weak (ADH)"),
        ("TLSv1", "EXP-RC4-MD5", "weak (EXP, MD5, RC4)"),
    ],
)
def test_cipher_names(version: str, cipher: str, weak: str | None) -> None:
    found = cipher_weakness(version, cipher)
    if weak is None:
        assert found is None
    else:
        assert found is not None and weak in found
