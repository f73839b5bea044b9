"""dovecot: IMAP and POP3, each on a STARTTLS (STLS) port and an implicit-TLS port, and a
second instance without TLS, where STARTTLS and STLS are neither offered nor accepted.

``dovecot -F`` keeps the master in the foreground; base_dir and the logs are in the temp
dir. No mailbox is ever opened: the probes stop before logging in, and the empty passdb
would refuse every login anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .pki import ServerCertificate
from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving


def _listener(name: str, port: int | None, implicit: bool = False) -> str:
    if port is None:
        return ""
    ssl = "\n    ssl = yes" if implicit else ""
    return f"  inet_listener {name} {{\n    port = {port}{ssl}\n  }}\n"


def _config(
    directory: Path, name: str, ports: dict[str, int], certificate: ServerCertificate | None
) -> Path:
    base = directory / name
    base.mkdir(mode=0o755)
    (base / "users").write_text("")
    ssl = (
        f"""\
ssl = yes
ssl_cert = <{certificate.cert_path}
ssl_key = <{certificate.key_path}
ssl_dh = </usr/share/dovecot/dh.pem
"""
        if certificate
        else "ssl = no\n"
    )
    path = base / "dovecot.conf"
    path.write_text(
        f"""\
protocols = imap pop3
listen = {LOOPBACK}
base_dir = {base / "run"}
state_dir = {base / "state"}
log_path = /dev/stderr
instance_name = tcpmonitor-{name}
login_greeting = Dovecot (tcpmonitor test) ready.
{ssl}\
# Plaintext logins only over TLS (the default), so STARTTLS matters; nobody logs in here.
disable_plaintext_auth = yes
mail_location = maildir:{base / "mail"}
passdb {{
  driver = passwd-file
  args = {base / "users"}
}}
userdb {{
  driver = passwd-file
  args = {base / "users"}
}}
service imap-login {{
{_listener("imap", ports.get("imap"))}{_listener("imaps", ports.get("imaps"), True)}}}
service pop3-login {{
{_listener("pop3", ports.get("pop3"))}{_listener("pop3s", ports.get("pop3s"), True)}}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    return path


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("dovecot")
    certificate = workspace.pki.issue("dovecot")
    binary = require("dovecot")
    with_tls = {"imap": free_port(), "imaps": free_port(), "pop3": free_port()}
    with_tls["pop3s"] = free_port()
    without_tls = {"imap": free_port(), "pop3": free_port()}
    with ExitStack() as stack:
        for name, ports, cert in (("tls", with_tls, certificate), ("plain", without_tls, None)):
            config = _config(directory, name, ports, cert)
            stack.enter_context(
                serving(
                    f"dovecot-{name}", [binary, "-F", "-c", str(config)], directory, ports.values()
                )
            )
        yield Daemon(
            "dovecot",
            {
                **with_tls,
                "imap_no_starttls": without_tls["imap"],
                "pop3_no_starttls": without_tls["pop3"],
            },
            certificate,
            directory,
        )
