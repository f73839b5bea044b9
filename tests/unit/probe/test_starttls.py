"""STARTTLS inside each protocol: the certificate reported is the one the upgraded session
presented, a server that does not offer or refuses the upgrade is STARTTLS_REFUSED, and a
client that skips the upgrade fails."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme

from tcpmonitor.api import ErrorCode, ProbeResult, Protocol, Verdict
from tcpmonitor.api.spec import STARTTLS_PROTOCOLS
from tcpmonitor.probe import ProbeMaterial

from ..probing import probe
from ..servers import Handler, serve
from . import protocol_servers as servers

DOMAIN = "example.com"
ServerFactory = Callable[..., Handler | servers.BlockingScript]

FACTORIES: dict[Protocol, ServerFactory] = {
    Protocol.SMTP: servers.smtp,
    Protocol.IMAP: servers.imap,
    Protocol.POP3: servers.pop3,
    Protocol.FTP: servers.ftp,
    Protocol.POSTGRESQL: servers.postgresql,
    Protocol.MYSQL: servers.mysql,
    Protocol.LDAP: servers.ldap,
    Protocol.XMPP: servers.xmpp,
}
# How each server says no: by not offering the upgrade, or by refusing it when asked.
NOT_OFFERED = [Protocol.SMTP, Protocol.IMAP, Protocol.POP3, Protocol.POSTGRESQL, Protocol.MYSQL]
NOT_OFFERED += [Protocol.LDAP, Protocol.XMPP]
REFUSED = [Protocol.SMTP, Protocol.IMAP, Protocol.POP3, Protocol.FTP, Protocol.XMPP]


class Leaf:
    def __init__(self, ca: trustme.CA) -> None:
        cert = ca.issue_cert(DOMAIN)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self.context)
        der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
        digest = hashlib.sha256(der).hexdigest().upper()
        self.fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@pytest.fixture(scope="module")
def leaf(ca: trustme.CA) -> Leaf:
    return Leaf(ca)


def run(
    handler: Handler | servers.BlockingScript,
    material: ProbeMaterial | None = None,
    **spec: Any,
) -> ProbeResult:
    async def scenario() -> ProbeResult:
        if isinstance(handler, servers.BlockingScript):
            with servers.serve_blocking(handler) as port:
                return await probe(port, material, **spec)
        async with serve(handler) as port:
            return await probe(port, material, **spec)

    return asyncio.run(scenario())


def trusting(ca: trustme.CA) -> ProbeMaterial:
    return ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode())


STARTTLS = {"enabled": True, "startTLS": True, "serverName": DOMAIN}


def test_the_starttls_protocols_are_the_ones_with_servers() -> None:
    assert set(FACTORIES) == STARTTLS_PROTOCOLS


@pytest.mark.parametrize("protocol", list(FACTORIES))
def test_upgrade_reports_the_upgraded_sessions_certificate(
    protocol: Protocol, leaf: Leaf, ca: trustme.CA
) -> None:
    result = run(FACTORIES[protocol](leaf.context), trusting(ca), protocol=protocol, tls=STARTTLS)
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None and result.tls.verified is True
    assert result.tls.version in ("TLSv1.2", "TLSv1.3")
    assert result.tls.certificate is not None
    assert result.tls.certificate.sha256_fingerprint == leaf.fingerprint
    assert DOMAIN in result.tls.certificate.dns_names
    assert result.timings.tls is not None and result.timings.data is not None
    assert result.protocol is not None and result.protocol.detail


@pytest.mark.parametrize("protocol", NOT_OFFERED)
def test_upgrade_not_offered_is_starttls_refused(protocol: Protocol, leaf: Leaf) -> None:
    handler = FACTORIES[protocol](leaf.context, offer=False)
    result = run(handler, protocol=protocol, tls={**STARTTLS, "insecureSkipVerify": True})
    assert result.error is not None and result.error.code == ErrorCode.STARTTLS_REFUSED, (
        result.error
    )
    assert result.tls is None  # no handshake happened, so nothing TLS is reported


@pytest.mark.parametrize("protocol", REFUSED)
def test_upgrade_refused_is_starttls_refused(protocol: Protocol, leaf: Leaf) -> None:
    handler = FACTORIES[protocol](leaf.context, accept=False)
    result = run(handler, protocol=protocol, tls={**STARTTLS, "insecureSkipVerify": True})
    assert result.error is not None and result.error.code == ErrorCode.STARTTLS_REFUSED, (
        result.error
    )


def test_skipping_the_upgrade_fails(leaf: Leaf, ca: trustme.CA) -> None:
    """Implicit TLS against a STARTTLS port: the server greets in plain text, no handshake."""
    tls = {"enabled": True, "serverName": DOMAIN}
    result = run(servers.smtp(leaf.context), trusting(ca), protocol="SMTP", tls=tls)
    assert result.state is Verdict.DOWN
    assert result.error is not None and result.error.code.startswith("TLS_"), result.error
    assert result.protocol is not None and result.protocol.detail is None


def test_untrusted_certificate_is_still_reported_from_the_upgraded_session(leaf: Leaf) -> None:
    result = run(servers.smtp(leaf.context), protocol="SMTP", tls=STARTTLS, timeout="3s")
    assert result.error is not None
    assert result.error.code == ErrorCode.TLS_UNTRUSTED_CERTIFICATE
    assert result.tls is not None and result.tls.verified is False
    assert result.tls.certificate is not None
    assert result.tls.certificate.sha256_fingerprint == leaf.fingerprint


def test_plaintext_after_the_go_ahead_is_refused(leaf: Leaf) -> None:
    """CVE-2011-0411 in reverse: a reply injected before the handshake must not be read as
    if it came through TLS."""

    async def injecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.test ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-mail.test\r\n250 STARTTLS\r\n")
        await reader.readline()
        writer.write(b"220 Go ahead\r\n250 injected\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    result = run(injecting, protocol="SMTP", tls={**STARTTLS, "insecureSkipVerify": True})
    assert result.error is not None and result.error.code == ErrorCode.PROTOCOL_ERROR
    assert "250 injected" in result.error.message
    assert result.tls is None


@pytest.mark.parametrize(
    ("protocol", "factory"),
    [(Protocol.REDIS, servers.redis), (Protocol.SMTP, servers.smtp)],
)
def test_implicit_tls_runs_the_same_exchange_inside_tls(
    protocol: Protocol, factory: Callable[[], Handler], leaf: Leaf, ca: trustme.CA
) -> None:
    async def scenario() -> ProbeResult:
        async with serve(factory(), ssl_context=leaf.context) as port:
            tls = {"enabled": True, "serverName": DOMAIN}
            return await probe(port, trusting(ca), protocol=protocol, tls=tls)

    result = asyncio.run(scenario())
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None and result.tls.certificate is not None
    assert result.tls.certificate.sha256_fingerprint == leaf.fingerprint
    assert result.protocol is not None and result.protocol.detail
