"""TLS through each protocol against the real daemons (issue 12): STARTTLS and implicit TLS.

The proof that an upgrade happened: the certificate in the result is the one *this* daemon
serves (SHA-256 of the DER and its own common name; every daemon has its own), verified
against the test CA. And the negative side: a client that skips the upgrade (implicit TLS on
a STARTTLS port) is Down, and a server that does not offer the upgrade is STARTTLS_REFUSED.
"""

from __future__ import annotations

import pytest

from tests.daemons.runner import Daemon

from .probe_cli import assert_down, assert_served_by, assert_up, probe, tls_options
from .test_probe_protocols import target

# (daemon, port purpose, spec.protocol)
STARTTLS = [
    ("postfix", "starttls", "SMTP"),
    ("dovecot", "imap", "IMAP"),
    ("dovecot", "pop3", "POP3"),
    ("vsftpd", "starttls", "FTP"),
    ("postgresql", "starttls", "PostgreSQL"),
    ("mariadb", "starttls", "MySQL"),
    ("slapd", "starttls", "LDAP"),
    ("prosody", "starttls", "XMPP"),
]

IMPLICIT = [
    ("postfix", "implicit", "SMTP"),
    ("dovecot", "imaps", "IMAP"),
    ("dovecot", "pop3s", "POP3"),
    ("slapd", "implicit", "LDAP"),
    ("redis", "implicit", "Redis"),
    ("mongodb", "implicit", "MongoDB"),
]

# One server per STARTTLS protocol that neither offers nor accepts the upgrade.
REFUSED = [
    ("postfix", "no_starttls", "SMTP"),
    ("dovecot", "imap_no_starttls", "IMAP"),
    ("dovecot", "pop3_no_starttls", "POP3"),
    ("vsftpd", "no_starttls", "FTP"),
    ("postgresql", "no_starttls", "PostgreSQL"),
    ("mariadb", "no_starttls", "MySQL"),
    ("slapd", "no_starttls", "LDAP"),
    ("prosody", "no_starttls", "XMPP"),
]


def _ids(table: list[tuple[str, str, str]]) -> list[str]:
    return [f"{protocol}-{purpose}" for _, purpose, protocol in table]


@pytest.mark.parametrize(
    ("daemon", "purpose", "protocol"), STARTTLS, ids=_ids(STARTTLS), indirect=["daemon"]
)
def test_starttls_reports_the_daemons_certificate(
    daemon: Daemon, purpose: str, protocol: str
) -> None:
    address, options = target(daemon, purpose)
    outcome = probe(address, "--protocol", protocol, *tls_options(daemon, starttls=True), *options)
    assert_up(outcome)
    assert outcome.protocol["name"] == protocol
    assert_served_by(outcome, daemon)


@pytest.mark.parametrize(
    ("daemon", "purpose", "protocol"), STARTTLS, ids=_ids(STARTTLS), indirect=["daemon"]
)
def test_skipping_the_upgrade_fails(daemon: Daemon, purpose: str, protocol: str) -> None:
    """Implicit TLS against a port that speaks plaintext first: no handshake, so Down."""
    address, options = target(daemon, purpose)
    outcome = probe(address, "--protocol", protocol, *tls_options(daemon, starttls=False), *options)
    assert_down(outcome)
    tls = outcome.result["tls"]
    assert tls is None or tls.get("certificate") is None, outcome.result


@pytest.mark.parametrize(
    ("daemon", "purpose", "protocol"), IMPLICIT, ids=_ids(IMPLICIT), indirect=["daemon"]
)
def test_implicit_tls_reports_the_daemons_certificate(
    daemon: Daemon, purpose: str, protocol: str
) -> None:
    address, options = target(daemon, purpose)
    outcome = probe(address, "--protocol", protocol, *tls_options(daemon, starttls=False), *options)
    assert_up(outcome)
    assert outcome.protocol["name"] == protocol
    assert_served_by(outcome, daemon)


@pytest.mark.parametrize(
    ("daemon", "purpose", "protocol"), REFUSED, ids=_ids(REFUSED), indirect=["daemon"]
)
def test_server_without_the_upgrade_is_starttls_refused(
    daemon: Daemon, purpose: str, protocol: str
) -> None:
    address, options = target(daemon, purpose)
    outcome = probe(address, "--protocol", protocol, *tls_options(daemon, starttls=True), *options)
    assert_down(outcome, "STARTTLS_REFUSED")


def test_certificate_of_another_daemon_is_told_apart(
    postfix_daemon: Daemon, dovecot_daemon: Daemon
) -> None:
    """The fingerprint comparison can fail: same CA, different daemon, different certificate."""
    outcome = probe(
        f"127.0.0.1:{dovecot_daemon.port('imap')}",
        "--protocol", "IMAP",
        *tls_options(dovecot_daemon, starttls=True),
    )  # fmt: skip
    assert_up(outcome)
    assert postfix_daemon.certificate is not None
    assert outcome.certificate["sha256Fingerprint"] != postfix_daemon.certificate.sha256_fingerprint
