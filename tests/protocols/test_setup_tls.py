"""The daemons' TLS setup, checked with openssl s_client (independent of our engine).

Each TLS endpoint serves its daemon's own test certificate, verified against the test CA
for the name ``localhost``; the endpoints without TLS show no certificate at all, so the
product's negative tests (skipped upgrade, STARTTLS_REFUSED) probe what they claim to.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.daemons.runner import Daemon

from .openssl import s_client

# (daemon, port purpose, s_client -starttls protocol or None for implicit TLS)
TLS_ENDPOINTS = [
    ("postfix", "starttls", "smtp"),
    ("postfix", "implicit", None),
    ("dovecot", "imap", "imap"),
    ("dovecot", "imaps", None),
    ("dovecot", "pop3", "pop3"),
    ("dovecot", "pop3s", None),
    ("vsftpd", "starttls", "ftp"),
    ("postgresql", "starttls", "postgres"),
    ("mariadb", "starttls", "mysql"),
    ("redis", "implicit", None),
    ("mongodb", "implicit", None),
    ("slapd", "starttls", "ldap"),
    ("slapd", "implicit", None),
    ("prosody", "starttls", "xmpp"),
    ("prosody", "implicit", None),
]


def _id(endpoint: tuple[str, str, str | None]) -> str:
    name, purpose, starttls = endpoint
    return f"{name}-{purpose}-{starttls or 'implicit'}"


@pytest.mark.parametrize(
    ("daemon", "purpose", "starttls"),
    TLS_ENDPOINTS,
    ids=[_id(e) for e in TLS_ENDPOINTS],
    indirect=["daemon"],
)
def test_endpoint_serves_the_daemons_certificate(
    daemon: Daemon, purpose: str, starttls: str | None
) -> None:
    assert daemon.certificate is not None
    handshake = s_client(daemon.port(purpose), daemon.certificate.ca_path, starttls=starttls)
    assert handshake.certificate is not None, handshake.output
    assert handshake.certificate == daemon.certificate.der, handshake.output
    assert handshake.verified, handshake.output
    assert f"CN = {daemon.certificate.common_name}" in handshake.output
    # The fingerprint the product's results are compared with is this certificate's.
    digest = hashlib.sha256(handshake.certificate).hexdigest().upper()
    assert daemon.certificate.sha256_fingerprint.replace(":", "") == digest


# STARTTLS ports, and ports where the upgrade is refused, with the protocol to try.
PLAINTEXT_FIRST = [
    ("postfix", "starttls", "smtp"),
    ("dovecot", "imap", "imap"),
    ("dovecot", "pop3", "pop3"),
    ("vsftpd", "starttls", "ftp"),
    ("postgresql", "starttls", "postgres"),
    ("mariadb", "starttls", "mysql"),
    ("slapd", "starttls", "ldap"),
    ("prosody", "starttls", "xmpp"),
]


@pytest.mark.parametrize(
    ("daemon", "purpose", "starttls"),
    PLAINTEXT_FIRST,
    ids=[_id(e) for e in PLAINTEXT_FIRST],
    indirect=["daemon"],
)
def test_starttls_port_does_no_implicit_tls(
    daemon: Daemon, purpose: str, starttls: str | None
) -> None:
    """A client that skips the upgrade gets no certificate: the port speaks plaintext first."""
    assert daemon.certificate is not None
    handshake = s_client(daemon.port(purpose), daemon.certificate.ca_path)
    assert handshake.certificate is None, handshake.output


# The servers without TLS. prosody's is checked in test_setup_plain: s_client -starttls xmpp
# waits forever for a <proceed/> from a server that never offered STARTTLS.
REFUSING = [
    ("postfix", "no_starttls", "smtp"),
    ("dovecot", "imap_no_starttls", "imap"),
    ("dovecot", "pop3_no_starttls", "pop3"),
    ("vsftpd", "no_starttls", "ftp"),
    ("postgresql", "no_starttls", "postgres"),
    ("mariadb", "no_starttls", "mysql"),
    ("slapd", "no_starttls", "ldap"),
]


@pytest.mark.parametrize(
    ("daemon", "purpose", "starttls"),
    REFUSING,
    ids=[_id(e) for e in REFUSING],
    indirect=["daemon"],
)
def test_server_without_tls_refuses_the_upgrade(
    daemon: Daemon, purpose: str, starttls: str
) -> None:
    assert daemon.certificate is not None
    handshake = s_client(daemon.port(purpose), daemon.certificate.ca_path, starttls=starttls)
    assert handshake.certificate is None, handshake.output
