"""redis-server: a plain port and a TLS port (Redis has no STARTTLS; TLS is implicit)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("redis")
    certificate = workspace.pki.issue("redis")
    plain, tls = free_port(), free_port()
    argv = [
        require("redis-server"),
        "--bind", LOOPBACK,
        "--port", str(plain),
        "--tls-port", str(tls),
        "--tls-cert-file", str(certificate.cert_path),
        "--tls-key-file", str(certificate.key_path),
        "--tls-ca-cert-file", str(certificate.ca_path),
        # Clients need no certificate of their own, like most production setups.
        "--tls-auth-clients", "no",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip
    with serving("redis-server", argv, directory, [plain, tls]):
        yield Daemon("redis", {"plain": plain, "implicit": tls}, certificate, directory)
