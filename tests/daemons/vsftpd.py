"""vsftpd: FTP with ``AUTH TLS`` (explicit FTPS) on one port and without TLS on another.

vsftpd runs in the foreground by default with ``listen=YES``; the second instance, with
ssl_enable=NO, is the server that answers ``AUTH TLS`` with a refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .pki import ServerCertificate
from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving

# vsftpd insists on an empty, root-owned directory to chroot its unprivileged helper into.
SECURE_CHROOT = Path("/var/run/vsftpd/empty")


def _config(directory: Path, name: str, port: int, certificate: ServerCertificate | None) -> Path:
    tls = (
        f"""\
ssl_enable=YES
rsa_cert_file={certificate.cert_path}
rsa_private_key_file={certificate.key_path}
allow_anon_ssl=YES
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=NO
"""
        if certificate
        else "ssl_enable=NO\n"
    )
    path = directory / f"{name}.conf"
    path.write_text(
        f"""\
listen=YES
listen_ipv6=NO
listen_address={LOOPBACK}
listen_port={port}
background=NO
anonymous_enable=NO
# Nobody logs in (the probes stop before USER), but vsftpd refuses to run with no way in.
local_enable=YES
write_enable=NO
ftpd_banner=vsFTPd (tcpmonitor test) ready
secure_chroot_dir={SECURE_CHROOT}
xferlog_enable=NO
vsftpd_log_file={directory / f"{name}.xfer.log"}
# seccomp rules of the packaged build break under some container runtimes; not needed here.
seccomp_sandbox=NO
{tls}"""
    )
    return path


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("vsftpd")
    certificate = workspace.pki.issue("vsftpd")
    SECURE_CHROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    binary = require("vsftpd")
    ports = {"starttls": free_port(), "no_starttls": free_port()}
    with ExitStack() as stack:
        for purpose, port in ports.items():
            config = _config(
                directory, purpose, port, certificate if purpose == "starttls" else None
            )
            stack.enter_context(
                serving(f"vsftpd-{purpose}", [binary, str(config)], directory, [port])
            )
        yield Daemon("vsftpd", ports, certificate, directory)
