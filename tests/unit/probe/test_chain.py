"""The presented chain: read from the handshake (TLS 1.2 and 1.3, after STARTTLS too, also when
verification fails), summarised per certificate, and its earliest expiry warned about. The
Certificate message's parsing alone: test_handshake_capture.py."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes

from tcpmonitor.api import ErrorCode, ProbeResult, Protocol, Verdict, WarningCode
from tcpmonitor.api.result import MAX_CHAIN
from tcpmonitor.probe import ProbeMaterial
from tcpmonitor.probe.chain import inspect_chain_entry

from ..probing import probe
from ..servers import blocking_tls_server, serve
from . import protocol_servers
from .chains import Issued, ec_key, issue, rsa_key, server_context


def trusting(root: Issued) -> ProbeMaterial:
    return ProbeMaterial(ca_pem=root.pem.decode())


def tls_probe(
    server: ssl.SSLContext, material: ProbeMaterial | None = None, **tls: object
) -> ProbeResult:
    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(port, material, host="localhost", tls={"enabled": True, **tls})

    return asyncio.run(scenario())


def limited(context: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLContext:
    context.maximum_version = version
    return context


# --- inspection ------------------------------------------------------------------------------


def test_garbage_certificate_is_listed_with_its_fingerprint() -> None:
    entry = inspect_chain_entry(b"\x30\x03\x02\x01\x01")
    assert entry.subject == "(unreadable)" and entry.not_after is None
    assert len(entry.sha256_fingerprint.split(":")) == 32


# --- real servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Test Root")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_intermediate_expiring_before_the_leaf_degrades(
    root: Issued, version: ssl.TLSVersion
) -> None:
    intermediate = root.issue("Short Intermediate", ca=True, days=(-30, 5))
    leaf = intermediate.issue("leaf", days=(-1, 300))
    result = tls_probe(limited(server_context(leaf, intermediate), version), trusting(root))
    assert result.state is Verdict.DEGRADED, result.error
    assert [w.code for w in result.warnings] == [WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRING]
    assert "CN=Short Intermediate" in result.warnings[0].message
    tls = result.tls
    assert tls is not None and tls.verified
    assert [c.subject for c in tls.chain] == ["CN=leaf", "CN=Short Intermediate"]
    assert [c.issuer for c in tls.chain] == ["CN=Short Intermediate", "CN=Test Root"]
    assert tls.chain_length == 2
    assert tls.chain_expiry == intermediate.cert.not_valid_after_utc
    assert tls.chain_expiry_subject == "CN=Short Intermediate"
    assert tls.chain[0].sha256_fingerprint == tls.certificate.sha256_fingerprint  # type: ignore[union-attr]
    assert (tls.chain[0].key_type, tls.chain[0].key_size) == ("RSA", 2048)
    assert tls.chain[0].signature_algorithm == "sha256WithRSAEncryption"
    assert tls.chain[0].not_before == leaf.cert.not_valid_before_utc


def test_sound_chain_is_up_and_reports_the_leaf_as_earliest(root: Issued) -> None:
    intermediate = root.issue("Long Intermediate", ca=True, days=(-30, 3000))
    leaf = intermediate.issue("leaf", days=(-1, 300))
    result = tls_probe(server_context(leaf, intermediate, root), trusting(root))
    assert result.state is Verdict.UP, (result.error, result.warnings)
    assert result.tls is not None and result.tls.chain_length == 3
    assert result.tls.chain_expiry == leaf.cert.not_valid_after_utc
    assert result.tls.chain[2].subject == result.tls.chain[2].issuer == "CN=Test Root"


def test_expired_intermediate_is_down_and_named(root: Issued) -> None:
    intermediate = root.issue("Old Intermediate", ca=True, days=(-300, -2))
    leaf = intermediate.issue("leaf", days=(-1, 300))
    result = tls_probe(server_context(leaf, intermediate), trusting(root))
    assert result.error is not None and result.error.code == ErrorCode.TLS_CERTIFICATE_EXPIRED
    assert [w.code for w in result.warnings] == [WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRED]
    assert "chain certificate 1 (CN=Old Intermediate) expired" in result.warnings[0].message
    assert result.tls is not None and not result.tls.verified
    assert result.tls.chain_length == 2
    assert result.tls.chain_expiry == intermediate.cert.not_valid_after_utc


def test_expired_intermediate_under_insecure_skip_verify_degrades(root: Issued) -> None:
    intermediate = root.issue("Old Intermediate", ca=True, days=(-300, -2))
    leaf = intermediate.issue("leaf", days=(-1, 300))
    result = tls_probe(server_context(leaf, intermediate), insecureSkipVerify=True)
    assert result.state is Verdict.DEGRADED
    assert [w.code for w in result.warnings] == [WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRED]


def test_incomplete_chain_is_untrusted_and_shows_what_was_sent(root: Issued) -> None:
    intermediate = root.issue("Missing Intermediate", ca=True)
    leaf = intermediate.issue("leaf")
    result = tls_probe(server_context(leaf), trusting(root))
    assert result.error is not None and result.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE
    assert result.tls is not None
    assert result.tls.chain_length == 1
    assert result.tls.chain[0].issuer == "CN=Missing Intermediate"


@pytest.mark.parametrize(
    ("key", "algorithm", "expected"),
    [
        (1024, None, ("RSA", 1024, "sha256WithRSAEncryption")),
        (2048, hashes.SHA1(), ("RSA", 2048, "sha1WithRSAEncryption")),
        (2048, hashes.MD5(), ("RSA", 2048, "md5WithRSAEncryption")),
    ],
)
def test_weak_certificates_are_inspected(
    root: Issued, key: int, algorithm: hashes.HashAlgorithm | None, expected: tuple[object, ...]
) -> None:
    # The inspecting context verifies nothing, so OpenSSL's security level (which would refuse
    # these when verifying) does not stand between the probe and the facts.
    leaf = root.issue("weak", key=rsa_key(key), hash_algorithm=algorithm)
    result = tls_probe(server_context(leaf, seclevel0=True), insecureSkipVerify=True)
    assert result.tls is not None and result.tls.chain, result.error
    got = result.tls.chain[0]
    assert (got.key_type, got.key_size, got.signature_algorithm) == expected
    # Verified, the same certificate is refused, and still shown.
    verified = tls_probe(server_context(leaf, seclevel0=True), trusting(root))
    assert verified.state is Verdict.DOWN
    assert verified.tls is not None and verified.tls.chain[0] == got


def test_ecdsa_chain(root: Issued) -> None:
    intermediate = root.issue("EC Intermediate", ca=True, key=ec_key())
    leaf = intermediate.issue("ec leaf", key=ec_key())
    result = tls_probe(server_context(leaf, intermediate), trusting(root))
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None
    leaf_entry, intermediate_entry = result.tls.chain
    assert (leaf_entry.key_type, leaf_entry.key_size) == ("EC", 256)
    assert leaf_entry.signature_algorithm == "ecdsa-with-SHA256"
    assert intermediate_entry.signature_algorithm == "sha256WithRSAEncryption"


def test_public_key_pin_survives_a_renewal_with_the_same_key(root: Issued) -> None:
    key = rsa_key()
    before = tls_probe(server_context(root.issue("leaf", key=key)), trusting(root))
    after = tls_probe(server_context(root.issue("leaf", key=key)), trusting(root))
    rekeyed = tls_probe(server_context(root.issue("leaf")), trusting(root))
    assert before.tls is not None and after.tls is not None and rekeyed.tls is not None
    assert before.tls.chain[0].sha256_fingerprint != after.tls.chain[0].sha256_fingerprint
    assert before.tls.chain[0].spki_sha256 == after.tls.chain[0].spki_sha256
    assert before.tls.chain[0].spki_sha256 != rekeyed.tls.chain[0].spki_sha256


def test_chain_after_starttls_also_when_verification_fails(root: Issued) -> None:
    intermediate = root.issue("Mail Intermediate", ca=True, days=(-30, 4))
    leaf = intermediate.issue("mail", dns_names=("example.com",))
    context = server_context(leaf, intermediate)
    tls = {"enabled": True, "startTLS": True, "serverName": "example.com"}

    async def scenario(material: ProbeMaterial | None) -> ProbeResult:
        async with serve(protocol_servers.smtp(context)) as port:
            return await probe(port, material, protocol=Protocol.SMTP, tls=tls)

    good = asyncio.run(scenario(trusting(root)))
    assert good.state is Verdict.DEGRADED, good.error
    assert [w.code for w in good.warnings] == [WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRING]
    assert good.tls is not None and good.tls.chain_length == 2
    untrusted = asyncio.run(scenario(None))  # public roots: the dialog is run again to read it
    assert untrusted.error is not None
    assert untrusted.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE
    assert untrusted.tls is not None
    assert [c.subject for c in untrusted.tls.chain] == ["CN=mail", "CN=Mail Intermediate"]


def test_chain_expiry_is_within_a_second_of_now_plus_validity(root: Issued) -> None:
    # Guards against reporting a naive or shifted time: chainExpiry is UTC.
    intermediate = root.issue("Intermediate", ca=True, days=(-1, 20))
    leaf = intermediate.issue("leaf", days=(-1, 300))
    result = tls_probe(server_context(leaf, intermediate), trusting(root))
    assert result.tls is not None and result.tls.chain_expiry is not None
    expected = datetime.now(UTC) + timedelta(days=20)
    assert abs((result.tls.chain_expiry - expected).total_seconds()) < 60


def test_a_long_chain_is_cut_to_the_bound_and_counted() -> None:
    issuer = issue("Long Root", key=ec_key())
    intermediates = []
    for index in range(MAX_CHAIN + 4):
        issuer = issuer.issue(f"Intermediate {index}", ca=True, key=ec_key())
        intermediates.append(issuer)
    leaf = issuer.issue("leaf", key=ec_key())
    server = server_context(leaf, *reversed(intermediates))
    result = tls_probe(server, insecureSkipVerify=True)
    assert result.tls is not None
    assert len(result.tls.chain) == MAX_CHAIN
    assert result.tls.chain_length == MAX_CHAIN + 5
    assert [c.subject for c in result.tls.chain[:2]] == [
        "CN=leaf",
        f"CN=Intermediate {MAX_CHAIN + 3}",
    ]


def test_names_in_the_chain_are_escaped(root: Issued) -> None:
    hostile = root.issue("evil\x1b[2J\r\nNormal TargetUp\u202e", ca=True, key=ec_key())
    leaf = hostile.issue("leaf", key=ec_key())
    result = tls_probe(server_context(leaf, hostile), insecureSkipVerify=True)
    assert result.tls is not None
    shown = result.tls.chain[1].subject
    assert shown == "CN=evil\\x1b[2J\\r\\nNormal TargetUp\\u202e"
    assert result.tls.chain[0].issuer == shown
    assert result.tls.chain_expiry_subject is not None
    assert result.tls.chain_expiry_subject.isprintable()


def test_without_the_handshake_hook_the_leaf_still_serves(
    root: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Python without SSLContext._msg_callback: no chain, nothing invented, the leaf and a
    # fingerprint pin still work.
    monkeypatch.setattr("tcpmonitor.probe.certificate.presented_chain", lambda _: None)
    leaf = root.issue("leaf")
    server = server_context(leaf)
    first = tls_probe(server, trusting(root))
    assert first.state is Verdict.UP, first.error
    assert first.tls is not None and first.tls.certificate is not None
    assert (first.tls.chain, first.tls.chain_length, first.tls.chain_expiry) == ([], None, None)
    pin = {"sha256Fingerprints": [first.tls.certificate.sha256_fingerprint]}
    assert tls_probe(server, trusting(root), pin=pin).state is Verdict.UP
    wrong = tls_probe(server, trusting(root), pin={"sha256Fingerprints": ["00" * 32]})
    assert wrong.error is not None and wrong.error.code == ErrorCode.TLS_FINGERPRINT_MISMATCH
