"""prosody: XMPP client connections with ``<starttls/>`` for the virtual host ``localhost``.

``prosody -F`` stays in the foreground; the config, data and pid file are in the temp dir,
and it runs as the package's ``prosody`` user (it refuses root). Server-to-server and
HTTP are off: only the client port (and a direct-TLS client port, XEP-0368) listens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving

USER = "prosody"


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("prosody", owner=USER)
    certificate = workspace.pki.issue("prosody")
    ports = {"starttls": free_port(), "implicit": free_port()}
    # Prosody indexes a certificate directory at start and complains if there is none; ours
    # stays empty, the certificate is named in the config.
    (directory / "certs").mkdir()
    config = directory / "prosody.cfg.lua"
    config.write_text(
        f"""\
pidfile = "{directory / "prosody.pid"}"
data_path = "{directory}"
interfaces = {{ "{LOOPBACK}" }}
c2s_ports = {{ {ports["starttls"]} }}
c2s_direct_tls_ports = {{ {ports["implicit"]} }}
c2s_require_encryption = true
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
modules_enabled = {{ "tls", "saslauth", "disco", "ping", "roster" }}
modules_disabled = {{ "s2s", "offline", "c2s_direct_tls_legacy" }}
authentication = "internal_hashed"
log = {{ {{ levels = {{ min = "info" }}, to = "console" }} }}
certificates = "{directory / "certs"}"
ssl = {{
  certificate = "{certificate.cert_path}",
  key = "{certificate.key_path}",
}}
VirtualHost "localhost"
  ssl = {{
    certificate = "{certificate.cert_path}",
    key = "{certificate.key_path}",
  }}
"""
    )
    argv = [require("prosody"), "-F", "--config", str(config)]
    with serving("prosody", argv, directory, ports.values(), user=USER):
        yield Daemon("prosody", ports, certificate, directory)
