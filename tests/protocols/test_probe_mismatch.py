"""A peer that does not speak the protocol asked for is Down with PROTOCOL_ERROR (issue 12).

Each pair is one where the wrong peer answers at once (it greets first, or replies to the
first command), so the probe has something to judge rather than a silence to time out on.
SSH against a greeting server is left out on purpose: RFC 4253 lets a server send other lines
before its version, so a client may rightly read on until its timeout.
"""

from __future__ import annotations

import pytest

from tests.daemons.runner import Daemon

from .probe_cli import assert_down, probe

# (daemon, port purpose, the protocol it does not speak)
MISMATCHES = [
    ("postfix", "starttls", "Redis"),
    ("postfix", "starttls", "Memcached"),
    ("memcached", "plain", "Redis"),
    ("postfix", "starttls", "LDAP"),
    ("sshd", "plain", "SMTP"),
    ("sshd", "plain", "FTP"),
    ("vsftpd", "starttls", "IMAP"),
    ("dovecot", "imap", "POP3"),
    ("dovecot", "pop3", "IMAP"),
]


@pytest.mark.parametrize(
    ("daemon", "purpose", "protocol"),
    MISMATCHES,
    ids=[f"{protocol}-against-{name}" for name, _, protocol in MISMATCHES],
    indirect=["daemon"],
)
def test_wrong_protocol_is_protocol_error(daemon: Daemon, purpose: str, protocol: str) -> None:
    outcome = probe(f"127.0.0.1:{daemon.port(purpose)}", "--protocol", protocol)
    assert_down(outcome, "PROTOCOL_ERROR")
    # The message quotes what the peer said instead, so a user sees what answered.
    message = outcome.result["error"]["message"]
    assert isinstance(message, str) and message, outcome.result
