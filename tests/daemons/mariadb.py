"""mariadb-server: a fresh data directory (mariadb-install-db) served with TLS, as ``mysql``,
and a copy of it served with ``--skip-ssl``, whose greeting does not offer TLS.

MySQL's "STARTTLS" is the SSL request in the handshake: the server announces
CLIENT_SSL in its greeting and the client asks to switch before authenticating.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, run_setup, serving

USER = "mysql"


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("mariadb", owner=USER)
    certificate = workspace.pki.issue("mariadb")
    certificate.give_key_to(USER)
    data = directory / "data-tls"
    run_setup(
        [
            require("mariadb-install-db"),
            "--no-defaults",  # nothing from /etc/mysql: the test's options only
            f"--datadir={data}",
            f"--user={USER}",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ],
        "mariadb-install-db",
        user=USER,
    )
    # Copied as the owner, so that the second server can use every file of its copy.
    plain_data = directory / "data-plain"
    run_setup(["cp", "-a", str(data), str(plain_data)], "copying the data directory", user=USER)
    ports = {"starttls": free_port(), "no_starttls": free_port()}
    tls = [
        f"--ssl-cert={certificate.cert_path}",
        f"--ssl-key={certificate.key_path}",
        f"--ssl-ca={certificate.ca_path}",
    ]
    binary = require("mariadbd")
    with ExitStack() as stack:
        for purpose, datadir, options in (
            ("starttls", data, tls),
            ("no_starttls", plain_data, ["--skip-ssl"]),
        ):
            # The only accounts are @localhost, so a server that checks grants answers a
            # client from 127.0.0.1 with "Host ... is not allowed to connect" instead of its
            # handshake unless the address resolves to localhost. Without grant tables it
            # greets every client, whatever /etc/hosts says; nobody logs in anyway, and it
            # listens on loopback only.
            argv = [
                binary,
                "--no-defaults",
                f"--datadir={datadir}",
                f"--user={USER}",
                f"--bind-address={LOOPBACK}",
                f"--port={ports[purpose]}",
                f"--socket={directory / f'{purpose}.sock'}",
                f"--pid-file={directory / f'{purpose}.pid'}",
                "--skip-grant-tables",
                "--skip-name-resolve",
                *options,
                # Small and quick to start; nothing is stored.
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
                "--skip-log-bin",
                "--performance-schema=OFF",
            ]
            stack.enter_context(
                serving(f"mariadbd-{purpose}", argv, directory, [ports[purpose]], user=USER)
            )
        yield Daemon("mariadb", ports, certificate, directory)
