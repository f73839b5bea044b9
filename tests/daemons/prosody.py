"""prosody: XMPP client connections with ``<starttls/>`` for the virtual host ``localhost``,
and a second instance without a certificate, whose stream features offer no STARTTLS.

``prosody -F`` stays in the foreground; the config, data and pid file are in the temp dir,
and it runs as the package's ``prosody`` user (it refuses root). Server-to-server and
HTTP are off: only the client ports listen (and, with TLS, a direct-TLS client port,
XEP-0368).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .pki import ServerCertificate
from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving

USER = "prosody"


def _config(
    directory: Path, name: str, ports: dict[str, int], certificate: ServerCertificate | None
) -> Path:
    base = directory / name
    base.mkdir()
    shutil.chown(base, USER, USER)  # prosody writes its pid file and data here
    # Prosody indexes a certificate directory at start and complains if there is none; ours
    # stays empty, the certificate is named in the config.
    (base / "certs").mkdir()
    if certificate is not None:
        ssl = f'{{ certificate = "{certificate.cert_path}", key = "{certificate.key_path}" }}'
        tls = f"""\
c2s_direct_tls_ports = {{ {ports["implicit"]} }}
c2s_require_encryption = true
ssl = {ssl}
"""
        host = f'VirtualHost "localhost"\n  ssl = {ssl}\n'
        modules = '"tls", '
    else:
        tls = "c2s_direct_tls_ports = {}\nc2s_require_encryption = false\n"
        host = 'VirtualHost "localhost"\n'
        # Without mod_tls: prosody would otherwise still offer <starttls/> and then fail the
        # handshake for want of a certificate, where a server without TLS offers nothing.
        modules = ""
    path = base / "prosody.cfg.lua"
    path.write_text(
        f"""\
pidfile = "{base / "prosody.pid"}"
data_path = "{base}"
certificates = "{base / "certs"}"
interfaces = {{ "{LOOPBACK}" }}
c2s_ports = {{ {ports["starttls"]} }}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
modules_enabled = {{ {modules}"saslauth", "disco", "ping", "roster" }}
modules_disabled = {{ "s2s", "offline", "c2s_direct_tls_legacy" }}
authentication = "internal_hashed"
log = {{ {{ levels = {{ min = "info" }}, to = "console" }} }}
{tls}{host}"""
    )
    return path


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("prosody", owner=USER)
    certificate = workspace.pki.issue("prosody")
    binary = require("prosody")
    with_tls = {"starttls": free_port(), "implicit": free_port()}
    without_tls = {"starttls": free_port()}
    with ExitStack() as stack:
        for name, ports, cert in (("tls", with_tls, certificate), ("plain", without_tls, None)):
            config = _config(directory, name, ports, cert)
            argv = [binary, "-F", "--config", str(config)]
            stack.enter_context(
                serving(f"prosody-{name}", argv, directory, ports.values(), user=USER)
            )
        yield Daemon(
            "prosody",
            {**with_tls, "no_starttls": without_tls["starttls"]},
            certificate,
            directory,
        )
