"""The probe table shows the chain, its earliest expiry and both verdicts, escaped."""

from __future__ import annotations

from datetime import UTC, datetime

from tcpmonitor.api import ProbeResult, TlsInfo, Verdict
from tcpmonitor.api.result import (
    ChainCertificate,
    RevocationInfo,
    RevocationSource,
    RevocationStatus,
)
from tcpmonitor.cli.render import render_result

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def entry(subject: str, issuer: str, not_after: datetime, **extra: object) -> ChainCertificate:
    return ChainCertificate(
        subject=subject,
        issuer=issuer,
        not_before=NOW,
        not_after=not_after,
        sha256_fingerprint="AB:CD",
        **extra,  # type: ignore[arg-type]
    )


def test_chain_and_verdicts_are_shown() -> None:
    intermediate_expiry = datetime(2026, 12, 6, tzinfo=UTC)
    tls = TlsInfo(
        version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        verified=False,
        verify_error="certificate verify failed: Hostname mismatch",
        chain_trusted=True,
        hostname_verified=False,
        hostname_error="Hostname mismatch, certificate is not valid for 'db'.",
        client_certificate_enforced=True,
        refusal_alert="certificate_required",
        chain=[
            entry(
                "CN=leaf",
                "CN=Intermediate",
                datetime(2027, 6, 1, tzinfo=UTC),
                key_type="EC",
                key_size=256,
                signature_algorithm="sha256WithRSAEncryption",
            ),
            entry("CN=Intermediate\x1b[2J", "CN=Root", intermediate_expiry),
        ],
        chain_length=3,
        chain_expiry=intermediate_expiry,
        chain_expiry_subject="CN=Intermediate",
    )
    shown = render_result(ProbeResult(state=Verdict.DOWN, started_at=NOW, tls=tls), "ns/db")
    lines = shown.splitlines()
    assert "  trust      chain trusted" in lines
    assert "  hostname   NO: Hostname mismatch, certificate is not valid for 'db'." in lines
    assert (
        "  mTLS       enforced: a client without a certificate was refused (certificate_required)"
        in lines
    )
    assert (
        "  chain[0]   CN=leaf, issuer CN=Intermediate, expires 2027-06-01 00:00:00Z, EC 256, "
        "sha256WithRSAEncryption, SHA-256 AB:CD"
    ) in lines
    assert any(
        line.startswith("  chain[1]   CN=Intermediate\\x1b[2J, issuer CN=Root") for line in lines
    )
    assert "  chain      1 more not shown" in lines
    assert "  chain exp  2026-12-06 00:00:00Z (CN=Intermediate), earliest in the chain" in lines


def test_unchecked_verdicts_say_why() -> None:
    tls = TlsInfo(verified=False, chain_trusted=None, chain_error="not checked: timeout")
    shown = render_result(ProbeResult(state=Verdict.UP, started_at=NOW, tls=tls), "ns/x")
    assert "  trust      not checked: timeout" in shown.splitlines()
    assert "  hostname   not checked: no certificate" in shown.splitlines()
    assert "mTLS" not in shown and "chain[" not in shown


def test_revocation_status_is_shown() -> None:
    revoked = RevocationInfo(
        status=RevocationStatus.REVOKED,
        source=RevocationSource.STAPLE,
        revoked_at=datetime(2026, 11, 29, tzinfo=UTC),
        reason="keyCompromise",
        message="the leaf was revoked",
    )
    good = RevocationInfo(
        status=RevocationStatus.GOOD,
        source=RevocationSource.RESPONDER,
        next_update=datetime(2026, 12, 2, tzinfo=UTC),
    )
    none = RevocationInfo(status=RevocationStatus.NONE, message="the server stapled no OCSP")
    shown = [
        render_result(
            ProbeResult(
                state=Verdict.UP, started_at=NOW, tls=TlsInfo(verified=True, revocation=value)
            ),
            "ns/x",
        ).splitlines()
        for value in (revoked, good, none)
    ]
    assert "  ocsp       REVOKED (staple, revoked 2026-11-29 00:00:00Z, keyCompromise)" in shown[0]
    assert "  ocsp       good (responder, next update 2026-12-02 00:00:00Z)" in shown[1]
    assert "  ocsp       none (the server stapled no OCSP)" in shown[2]
