"""dovecot: IMAP and POP3, each on a STARTTLS (STLS) port and an implicit-TLS port.

``dovecot -F`` keeps the master in the foreground; base_dir and the logs are in the temp
dir. No mailbox is ever opened: the probes stop before logging in, and the empty passdb
would refuse every login anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("dovecot")
    certificate = workspace.pki.issue("dovecot")
    ports = {
        "imap": free_port(),
        "imaps": free_port(),
        "pop3": free_port(),
        "pop3s": free_port(),
    }
    (directory / "users").write_text("")
    (directory / "run").mkdir(mode=0o755)
    config = directory / "dovecot.conf"
    config.write_text(
        f"""\
protocols = imap pop3
listen = {LOOPBACK}
base_dir = {directory / "run"}
state_dir = {directory / "state"}
log_path = /dev/stderr
instance_name = tcpmonitor-test
login_greeting = Dovecot (tcpmonitor test) ready.
ssl = yes
ssl_cert = <{certificate.cert_path}
ssl_key = <{certificate.key_path}
ssl_dh = </usr/share/dovecot/dh.pem
# STARTTLS must be offered before login, not required: the probes never log in.
disable_plaintext_auth = yes
mail_location = maildir:{directory / "mail"}
passdb {{
  driver = passwd-file
  args = {directory / "users"}
}}
userdb {{
  driver = passwd-file
  args = {directory / "users"}
}}
service imap-login {{
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = {ports["pop3s"]}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    argv = [require("dovecot"), "-F", "-c", str(config)]
    with serving("dovecot", argv, directory, ports.values()):
        yield Daemon("dovecot", ports, certificate, directory)
