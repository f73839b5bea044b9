"""slapd: LDAP with the StartTLS extended operation, LDAPS on a second port, and a third
instance without certificates, where StartTLS is refused.

A slapd.conf with no database is enough: the probes read the RootDSE or ask for StartTLS,
which slapd answers itself. ``-d`` keeps it in the foreground (and logs to stderr).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .pki import ServerCertificate
from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving


def _config(directory: Path, name: str, certificate: ServerCertificate | None) -> Path:
    tls = (
        f"""\
TLSCACertificateFile {certificate.ca_path}
TLSCertificateFile {certificate.cert_path}
TLSCertificateKeyFile {certificate.key_path}
"""
        if certificate
        else ""
    )
    path = directory / f"{name}.conf"
    path.write_text(
        f"""\
include /etc/ldap/schema/core.schema
pidfile {directory / f"{name}.pid"}
argsfile {directory / f"{name}.args"}
{tls}"""
    )
    return path


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("slapd")
    certificate = workspace.pki.issue("slapd")
    binary = require("slapd")
    ports = {"starttls": free_port(), "implicit": free_port(), "no_starttls": free_port()}
    with_tls = _config(directory, "tls", certificate)
    without_tls = _config(directory, "plain", None)
    urls = f"ldap://{LOOPBACK}:{ports['starttls']}/ ldaps://{LOOPBACK}:{ports['implicit']}/"
    with ExitStack() as stack:
        stack.enter_context(
            serving(
                "slapd-tls",
                [binary, "-d", "stats", "-f", str(with_tls), "-h", urls],
                directory,
                [ports["starttls"], ports["implicit"]],
            )
        )
        plain_url = f"ldap://{LOOPBACK}:{ports['no_starttls']}/"
        stack.enter_context(
            serving(
                "slapd-plain",
                [binary, "-d", "stats", "-f", str(without_tls), "-h", plain_url],
                directory,
                [ports["no_starttls"]],
            )
        )
        yield Daemon("slapd", ports, certificate, directory)
