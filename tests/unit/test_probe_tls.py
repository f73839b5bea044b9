"""TLS probes against servers with certificates generated per run (trustme)."""

from __future__ import annotations

import asyncio
import ssl

import trustme

from tcpmonitor.api import ErrorCode, ProbeResult, Verdict
from tcpmonitor.probe import ClientCertificate, ProbeMaterial

from .conftest import ServerContextFactory, days_from_now
from .probing import contains, probe
from .servers import blocking_tls_server, echo, greet, serve


def tls_probe(
    server: ssl.SSLContext, material: ProbeMaterial | None = None, **spec: object
) -> ProbeResult:
    """Probe a blocking TLS server (real OpenSSL alert behaviour) that greets with hello."""
    tls = {"enabled": True, **spec.pop("tls", {})}  # type: ignore[dict-item]

    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(port, material, tls=tls, **spec)

    return asyncio.run(scenario())


def trusting(ca: trustme.CA, **extra: object) -> ProbeMaterial:
    return ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode(), **extra)  # type: ignore[arg-type]


def test_valid_certificate_is_verified_and_summarised(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    result = tls_probe(server_context(), trusting(ca), host="localhost")
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None and result.tls.verified is True
    assert result.tls.version in ("TLSv1.2", "TLSv1.3")
    assert result.tls.cipher
    cert = result.tls.certificate
    assert cert is not None
    assert "localhost" in cert.dns_names
    assert cert.days_remaining > 300
    assert len(cert.sha256_fingerprint.split(":")) == 32
    assert result.timings.tls is not None and result.timings.tls > 0


def test_expired_certificate_is_down_and_still_inspected(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context(not_before=days_from_now(-30), not_after=days_from_now(-2))
    result = tls_probe(server, trusting(ca), host="localhost")
    assert result.error is not None and result.error.code == ErrorCode.TLS_CERTIFICATE_EXPIRED
    assert result.tls is not None and result.tls.verified is False
    assert result.tls.verify_error and "expired" in result.tls.verify_error
    assert result.tls.certificate is not None
    assert -2.1 < result.tls.certificate.days_remaining < -1.9


def test_expired_certificate_is_reported_even_when_unverified(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context(not_before=days_from_now(-30), not_after=days_from_now(-2))
    result = tls_probe(server, host="localhost", tls={"insecureSkipVerify": True})
    assert result.state is Verdict.DEGRADED
    assert [w.code for w in result.warnings] == ["TLS_CERTIFICATE_EXPIRED"]
    assert result.tls is not None and result.tls.verified is False
    assert result.tls.certificate is not None and result.tls.certificate.days_remaining < 0


def test_not_yet_valid_certificate(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    server = server_context(not_before=days_from_now(3), not_after=days_from_now(300))
    result = tls_probe(server, trusting(ca), host="localhost")
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_CERTIFICATE_NOT_YET_VALID


def test_wrong_host_name(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    result = tls_probe(server_context("other.example"), trusting(ca), host="localhost")
    assert result.error is not None and result.error.code == ErrorCode.TLS_HOSTNAME_MISMATCH
    assert result.tls is not None and result.tls.certificate is not None
    assert result.tls.certificate.dns_names == ["other.example"]


def test_server_name_overrides_the_host_for_sni_and_verification(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context("db.internal.example")
    result = tls_probe(server, trusting(ca), tls={"serverName": "db.internal.example"})
    assert result.state is Verdict.UP, result.error


def test_unknown_ca(
    ca: trustme.CA, other_ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context(issuer=other_ca)
    result = tls_probe(server, trusting(ca), host="localhost")
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE
    # Public roots do not know trustme's CA either.
    result = tls_probe(server_context(), host="localhost")
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE


def test_certificate_close_to_expiry_is_degraded(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context(not_before=days_from_now(-80), not_after=days_from_now(5))
    result = tls_probe(server, trusting(ca), host="localhost")
    assert result.state is Verdict.DEGRADED
    assert [w.code for w in result.warnings] == ["TLS_CERTIFICATE_EXPIRING"]
    result = tls_probe(server, trusting(ca), host="localhost", tls={"expiryWarning": "3d"})
    assert result.state is Verdict.UP


def test_client_certificate_required_and_presented(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    client = ca.issue_cert("probe@tcpmonitor.dev")
    material = trusting(
        ca,
        client_certificate=ClientCertificate(
            cert_pem=client.cert_chain_pems[0].bytes(), key_pem=client.private_key_pem.bytes()
        ),
    )
    server = server_context(require_client_cert=True)
    result = tls_probe(server, material, host="localhost", assertions=[contains("hello")])
    assert result.state is Verdict.UP, result.error


def test_client_certificate_required_but_missing_tls13(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    """In TLS 1.3 the refusal is an alert after the handshake; the read phase reports it."""
    server = server_context(require_client_cert=True)

    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(
                port,
                trusting(ca),
                host="localhost",
                tls={"enabled": True},
                assertions=[contains("hello")],
            )

    result = asyncio.run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.TLS_HANDSHAKE_FAILED
    assert "requires a client certificate" in result.error.message


def test_client_certificate_required_but_missing_tls12(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context(require_client_cert=True, max_version=ssl.TLSVersion.TLSv1_2)
    result = tls_probe(server, trusting(ca), host="localhost")
    assert result.error is not None and result.error.code == ErrorCode.TLS_HANDSHAKE_FAILED


def test_server_below_the_minimum_version(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context(max_version=ssl.TLSVersion.TLSv1_2)
    result = tls_probe(server, trusting(ca), host="localhost", tls={"minVersion": "TLS1.3"})
    assert result.error is not None and result.error.code == ErrorCode.TLS_VERSION_TOO_OLD
    assert tls_probe(server, trusting(ca), host="localhost").state is Verdict.UP


def test_plain_tcp_server_is_a_failed_handshake(ca: trustme.CA) -> None:
    async def scenario() -> ProbeResult:
        async with serve(greet(b"SSH-2.0-OpenSSH_9.2\r\n")) as port:
            return await probe(port, trusting(ca), host="localhost", tls={"enabled": True})

    result = asyncio.run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.TLS_HANDSHAKE_FAILED


def test_data_phase_runs_inside_tls(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    async def scenario() -> ProbeResult:
        async with serve(echo, ssl_context=server_context()) as port:
            return await probe(
                port,
                trusting(ca),
                host="localhost",
                tls={"enabled": True},
                send="over tls",
                assertions=[contains("over tls")],
            )

    result = asyncio.run(scenario())
    assert result.state is Verdict.UP, result.error
    assert result.timings.data is not None
