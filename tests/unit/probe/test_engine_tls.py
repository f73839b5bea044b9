"""TLS probes against servers with certificates generated per run (trustme)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpmonitor.api import ErrorCode, ProbeResult, Verdict, WarningCode
from tcpmonitor.api.printable import TRUNCATED
from tcpmonitor.probe import ClientCertificate, ProbeMaterial
from tcpmonitor.probe.certificate import inspect_certificate

from ...hostile.bounds import assert_result_fits_the_status
from ...hostile.certificates import HostileCertificate, hostile_certificate
from ..conftest import ServerContextFactory, days_from_now
from ..probing import contains, probe
from ..servers import blocking_tls_server, echo, greet, serve


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


NON_ASCII_NAME = {b"bad-Xname": b"bad-\xe9name"}
FORGED = "evil\x1b[2J\r\n2026-12-01T00:00:00Z Normal TargetUp prod/payments-db: up\u202e"


def hostile_probe(
    tmp_path: Path, cert: HostileCertificate, material: ProbeMaterial | None = None, **spec: object
) -> ProbeResult:
    return tls_probe(cert.server_context(tmp_path), material, host="localhost", **spec)


def der_of(cert: HostileCertificate) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_pem.decode())


def test_non_ascii_dns_name_is_shown_escaped_and_the_probe_is_degraded(tmp_path: Path) -> None:
    cert = hostile_certificate(dns_names=["localhost", "bad-Xname.example"], patches=NON_ASCII_NAME)
    result = hostile_probe(tmp_path, cert, tls={"insecureSkipVerify": True})
    assert result.state is Verdict.DEGRADED, result.error
    assert [w.code for w in result.warnings] == [WarningCode.TLS_CERTIFICATE_UNREADABLE]
    assert "subjectAltName" in result.warnings[0].message
    assert result.tls is not None and result.tls.certificate is not None
    assert result.tls.certificate.dns_names == ["localhost", "bad-\\xe9name.example"]
    assert result.tls.certificate.subject == "CN=hostile.test"
    assert result.tls.certificate.days_remaining > 29
    assert_result_fits_the_status(result)


def test_non_ascii_dns_name_behind_a_verify_error_is_still_inspected(tmp_path: Path) -> None:
    cert = hostile_certificate(dns_names=["bad-Xname.example"], patches=NON_ASCII_NAME)
    trusted = ProbeMaterial(ca_pem=cert.cert_pem.decode())
    result = hostile_probe(tmp_path, cert, trusted)
    assert result.state is Verdict.DOWN
    assert result.error is not None and result.error.code.startswith("TLS_")
    assert [w.code for w in result.warnings] == [WarningCode.TLS_CERTIFICATE_UNREADABLE]
    assert result.tls is not None and result.tls.certificate is not None
    assert result.tls.certificate.dns_names == ["bad-\\xe9name.example"]
    assert_result_fits_the_status(result)


def test_control_characters_in_names_are_escaped(tmp_path: Path) -> None:
    cert = hostile_certificate(common_name=FORGED, dns_names=["a\r\nb\x1b[0m.example"])
    result = hostile_probe(tmp_path, cert, tls={"insecureSkipVerify": True})
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None and result.tls.certificate is not None
    c = result.tls.certificate
    for text in (c.subject, c.issuer, *c.dns_names):
        assert text.isprintable(), text
    assert c.subject.startswith("CN=evil\\x1b[2J\\r\\n2026")
    assert c.subject.endswith("\\u202e")
    assert c.dns_names == ["a\\r\\nb\\x1b[0m.example"]


def test_long_and_many_dns_names_are_cut_to_the_status_bounds(tmp_path: Path) -> None:
    names = ["a" * 300, *(f"n{i}.example" for i in range(999))]
    cert = hostile_certificate(common_name="x" * 2000, dns_names=names)
    result = hostile_probe(tmp_path, cert, tls={"insecureSkipVerify": True})
    assert result.tls is not None and result.tls.certificate is not None
    c = result.tls.certificate
    assert len(c.dns_names) == 32
    assert c.dns_names[0] == "a" * 250 + TRUNCATED
    assert c.dns_names[1] == "n0.example"
    assert c.dns_names[-1] == f"{TRUNCATED} 969 more"
    assert len(c.subject) == 1024 and c.subject.endswith(TRUNCATED)
    assert_result_fits_the_status(result)


def test_certificate_that_does_not_parse_is_named_by_its_fingerprint() -> None:
    der = der_of(hostile_certificate())
    for broken in (b"", b"\x30\x03abc", der[:100], der[:-1], b"\xff" * 64):
        inspection = inspect_certificate(broken)
        assert inspection.certificate is None
        assert inspection.problem is not None
        assert inspection.problem.startswith("does not parse (SHA-256 ")


def test_duplicate_extension_still_shows_the_names_read_from_the_der() -> None:
    cert = hostile_certificate(dns_names=["localhost"])
    der = der_of(cert)
    # Turn the subject key identifier's OID into a second subjectAltName.
    ski, san = b"\x06\x03\x55\x1d\x0e", b"\x06\x03\x55\x1d\x11"
    inspection = inspect_certificate(der.replace(ski, san))
    assert inspection.certificate is not None
    assert inspection.certificate.dns_names == ["localhost"]
    assert inspection.problem is not None and "raw DER" in inspection.problem


def test_undecodable_subject_is_left_out_and_said_so() -> None:
    der = der_of(hostile_certificate(common_name="bad-Xname", patches=NON_ASCII_NAME | {}))
    inspection = inspect_certificate(der)
    assert inspection.certificate is not None
    assert inspection.problem is not None
    # An invalid UTF8String: whether cryptography refuses or replaces it, nothing raw is kept.
    assert inspection.certificate.subject.isprintable()


_VALID_DER = der_of(hostile_certificate(dns_names=["localhost", "a.example"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_VALID_DER) - 1), st.integers(0, 255)), max_size=8))
def test_inspection_of_any_corrupted_certificate_never_raises(
    flips: list[tuple[int, int]],
) -> None:
    der = bytearray(_VALID_DER)
    for index, value in flips:
        der[index] = value
    inspection = inspect_certificate(bytes(der))
    if inspection.certificate is not None:
        c = inspection.certificate
        assert len(c.subject) <= 1024 and c.subject.isprintable()
        assert len(c.dns_names) <= 32
        assert all(len(n) <= 253 and n.isprintable() for n in c.dns_names)
