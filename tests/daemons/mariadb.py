"""mariadb-server: a fresh data directory (mariadb-install-db) served with TLS, as ``mysql``.

MySQL's "STARTTLS" is the SSL request in the handshake: the server announces
CLIENT_SSL in its greeting and the client asks to switch before authenticating.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, run_setup, serving

USER = "mysql"


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("mariadb", owner=USER)
    certificate = workspace.pki.issue("mariadb")
    certificate.give_key_to(USER)
    data = directory / "data"
    common = [
        "--no-defaults",  # nothing from /etc/mysql: the test's options only
        f"--datadir={data}",
        f"--user={USER}",
    ]
    run_setup(
        [
            require("mariadb-install-db"),
            *common,
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ],
        "mariadb-install-db",
        user=USER,
    )
    port = free_port()
    # The only accounts are @localhost, so a server that checks grants answers a client from
    # 127.0.0.1 with "Host ... is not allowed to connect" instead of its handshake unless the
    # address resolves to localhost. Without grant tables it greets every client, whatever
    # /etc/hosts says; nobody logs in anyway, and it listens on loopback only.
    argv = [
        require("mariadbd"),
        *common,
        f"--bind-address={LOOPBACK}",
        f"--port={port}",
        f"--socket={directory / 'mysqld.sock'}",
        f"--pid-file={directory / 'mysqld.pid'}",
        "--skip-grant-tables",
        "--skip-name-resolve",
        f"--ssl-cert={certificate.cert_path}",
        f"--ssl-key={certificate.key_path}",
        f"--ssl-ca={certificate.ca_path}",
        # Small and quick to start; nothing is stored.
        "--innodb-buffer-pool-size=16M",
        "--innodb-log-file-size=8M",
        "--skip-log-bin",
        "--performance-schema=OFF",
    ]
    with serving("mariadbd", argv, directory, [port], user=USER):
        yield Daemon("mariadb", {"starttls": port}, certificate, directory)
