"""tls.clientCertificateEnforced: after the probe (with its client certificate), a client
without one must be refused; a server that merely requests a certificate lets it in."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from tcpmonitor.api import ErrorCode, ProbeResult, Protocol, Verdict
from tcpmonitor.probe import ClientCertificate, ProbeMaterial

from ..conftest import ServerContextFactory
from ..probing import contains, probe
from ..servers import blocking_tls_server, serve
from . import protocol_servers

TLS13, TLS12 = ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2


def with_client_certificate(ca: trustme.CA) -> ProbeMaterial:
    client = ca.issue_cert("client@example.com")
    return ProbeMaterial(
        ca_pem=ca.cert_pem.bytes().decode(),
        client_certificate=ClientCertificate(
            cert_pem=client.cert_chain_pems[0].bytes(), key_pem=client.private_key_pem.bytes()
        ),
    )


def enforced_probe(server: ssl.SSLContext, material: ProbeMaterial, **rule: object) -> ProbeResult:
    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(
                port,
                material,
                host="localhost",
                tls={"enabled": True, "clientCertificateEnforced": rule},
                assertions=[contains("hello")],
            )

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("version", "alert"), [(TLS13, "certificate_required"), (TLS12, "handshake_failure")]
)
def test_a_server_that_requires_a_certificate_refuses_with_its_alert(
    ca: trustme.CA, server_context: ServerContextFactory, version: ssl.TLSVersion, alert: str
) -> None:
    server = server_context(require_client_cert=True, max_version=version)
    result = enforced_probe(server, with_client_certificate(ca))
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None
    assert (result.tls.client_certificate_enforced, result.tls.refusal_alert) == (True, alert)
    exact = enforced_probe(server, with_client_certificate(ca), alert=alert)
    assert exact.state is Verdict.UP, exact.error


def test_the_wrong_alert_is_down(ca: trustme.CA, server_context: ServerContextFactory) -> None:
    server = server_context(require_client_cert=True, max_version=TLS12)
    result = enforced_probe(server, with_client_certificate(ca), alert="certificate_required")
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_CLIENT_CERTIFICATE_WRONG_ALERT
    assert "refused with handshake_failure, not certificate_required" in result.error.message


@pytest.mark.parametrize("version", [TLS13, TLS12])
def test_a_server_that_merely_requests_a_certificate_is_down(
    ca: trustme.CA, server_context: ServerContextFactory, version: ssl.TLSVersion
) -> None:
    server = server_context(require_client_cert=True, max_version=version)
    server.verify_mode = ssl.CERT_OPTIONAL  # asks for a certificate, takes a client without
    result = enforced_probe(server, with_client_certificate(ca))
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_CLIENT_CERTIFICATE_NOT_ENFORCED
    assert "completed the handshake and got data" in result.error.message
    assert result.tls is not None and result.tls.client_certificate_enforced is False


def test_without_the_rule_no_second_connection_is_judged(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    server = server_context(require_client_cert=True)
    server.verify_mode = ssl.CERT_OPTIONAL

    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(
                port, with_client_certificate(ca), host="localhost", tls={"enabled": True}
            )

    result = asyncio.run(scenario())
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None and result.tls.client_certificate_enforced is None


def test_after_starttls(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("example.com")

    def context(verify_mode: ssl.VerifyMode) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        ca.configure_trust(ctx)
        ctx.verify_mode = verify_mode
        return ctx

    async def scenario(server: ssl.SSLContext) -> ProbeResult:
        async with serve(protocol_servers.smtp(server)) as port:
            return await probe(
                port,
                with_client_certificate(ca),
                protocol=Protocol.SMTP,
                tls={
                    "enabled": True,
                    "startTLS": True,
                    "serverName": "example.com",
                    "clientCertificateEnforced": {},
                },
            )

    required = asyncio.run(scenario(context(ssl.CERT_REQUIRED)))
    assert required.state is Verdict.UP, required.error
    assert required.tls is not None and required.tls.client_certificate_enforced is True
    optional = asyncio.run(scenario(context(ssl.CERT_OPTIONAL)))
    assert optional.error is not None
    assert optional.error.code == ErrorCode.TLS_CLIENT_CERTIFICATE_NOT_ENFORCED


def test_a_silent_server_that_lets_the_client_in_is_down_after_the_wait(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    # No data and no alert: the client waits (never past the deadline) and then knows it is in.
    server = server_context(require_client_cert=True)
    server.verify_mode = ssl.CERT_OPTIONAL

    async def scenario() -> ProbeResult:
        with blocking_tls_server(server, reply=b"") as port:
            return await probe(
                port,
                with_client_certificate(ca),
                host="localhost",
                timeout="2s",
                tls={"enabled": True, "clientCertificateEnforced": {}},
            )

    result = asyncio.run(scenario())
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_CLIENT_CERTIFICATE_NOT_ENFORCED
    assert "was not refused within" in result.error.message
    assert result.timings.total is not None and result.timings.total < 1000  # the wait is not timed
