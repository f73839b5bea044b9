"""Our probe speaks each protocol to the real daemon, in plaintext (issue 12).

``tcpmonitor probe 127.0.0.1:PORT --protocol NAME -o json``: Up, ``result.protocol.name`` is
the spec.protocol value (the flag is case-insensitive, so the tests pass it in lower case),
and ``result.protocol.detail`` is one line that says something true about this server. With
no TLS asked for there is no TLS in the result, even on ports that offer STARTTLS.
"""

from __future__ import annotations

import re

import pytest

from tests.daemons.runner import Daemon

from .probe_cli import assert_up, probe

# (daemon, port purpose, spec.protocol, what the detail must contain: a regex, or None where
# the server says nothing about itself before login and any one-line detail will do)
PLAIN = [
    ("postfix", "starttls", "SMTP", r"ESMTP Postfix \(tcpmonitor test\)"),
    ("dovecot", "imap", "IMAP", r"Dovecot \(tcpmonitor test\) ready"),
    ("dovecot", "pop3", "POP3", r"Dovecot \(tcpmonitor test\) ready"),
    ("vsftpd", "starttls", "FTP", r"vsFTPd \(tcpmonitor test\) ready"),
    ("sshd", "plain", "SSH", r"OpenSSH_\d"),
    ("postgresql", "no_starttls", "PostgreSQL", None),
    ("mariadb", "starttls", "MySQL", r"\d+\.\d+\.\d+-MariaDB"),
    ("redis", "plain", "Redis", r"PONG|\d+\.\d+\.\d+"),
    ("memcached", "plain", "Memcached", r"\d+\.\d+\.\d+"),
    ("mongodb", "plain", "MongoDB", None),
    ("slapd", "starttls", "LDAP", None),
    ("prosody", "starttls", "XMPP", None),
]


def target(daemon: Daemon, purpose: str) -> tuple[str, list[str]]:
    """XMPP needs the served domain in its stream header, so prosody is probed by name."""
    if daemon.name == "prosody":
        return f"localhost:{daemon.port(purpose)}", ["--ip-family", "ipv4"]
    return f"127.0.0.1:{daemon.port(purpose)}", []


@pytest.mark.parametrize(
    ("daemon", "purpose", "protocol", "detail"),
    PLAIN,
    ids=[entry[2] for entry in PLAIN],
    indirect=["daemon"],
)
def test_protocol_check_is_up_and_says_what_it_learnt(
    daemon: Daemon, purpose: str, protocol: str, detail: str | None
) -> None:
    address, options = target(daemon, purpose)
    outcome = probe(address, "--protocol", protocol.lower(), *options)
    assert_up(outcome)
    assert outcome.protocol["name"] == protocol
    learnt = outcome.protocol["detail"]
    assert isinstance(learnt, str) and learnt.strip(), outcome.result
    assert "\n" not in learnt and "\r" not in learnt, learnt
    if detail is not None:
        assert re.search(detail, learnt), learnt
    assert outcome.result["tls"] is None
