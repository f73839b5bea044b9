"""PostgreSQL: one cluster with ssl=on and a copy of it with ssl=off, as user ``postgres``.

postgres refuses to run as root, so initdb and the server run as the package's ``postgres``
user in a directory it owns. initdb runs once (a couple of seconds); the second data
directory is a copy, which is much faster than a second initdb.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.controlplane.processes import StartupError

from .runner import LOOPBACK, Daemon, Workspace, free_port, run_setup, serving

USER = "postgres"


def binaries() -> Path:
    """The newest installed major version's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if not found:
        raise StartupError("postgresql is not installed; run .ci/provision-daemons (as root)")
    return found[-1].parent


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("postgresql", owner=USER)
    certificate = workspace.pki.issue("postgresql")
    certificate.give_key_to(USER)  # postgres refuses a key that others can read
    bin_dir = binaries()
    ssl_on = directory / "ssl-on"
    # Password authentication over TCP as in production, so that a startup message is
    # answered with an authentication request (SCRAM), where the probes stop. initdb wants a
    # superuser password for that; nobody ever uses it.
    password_file = directory / "password"
    password_file.write_text(secrets.token_urlsafe(24))
    initdb = [
        str(bin_dir / "initdb"),
        f"--pgdata={ssl_on}",
        f"--username={USER}",
        "--auth-host=scram-sha-256",
        "--auth-local=peer",
        f"--pwfile={password_file}",
        "--no-sync",
        "--no-instructions",
    ]
    run_setup(initdb, "initdb", user=USER)
    ssl_off = directory / "ssl-off"
    # Copied as the owner, so that postgres can read every file of its copy.
    run_setup(["cp", "-a", str(ssl_on), str(ssl_off)], "copying the cluster", user=USER)
    ports = {"starttls": free_port(), "no_starttls": free_port()}
    with ExitStack() as stack:
        for purpose, data in (("starttls", ssl_on), ("no_starttls", ssl_off)):
            port = ports[purpose]
            ssl = purpose == "starttls"
            argv = [
                str(bin_dir / "postgres"),
                "-D", str(data),
                "-c", f"listen_addresses={LOOPBACK}",
                "-c", f"port={port}",
                "-c", f"unix_socket_directories={directory}",
                "-c", f"ssl={'on' if ssl else 'off'}",
                "-c", f"ssl_cert_file={certificate.cert_path}",
                "-c", f"ssl_key_file={certificate.key_path}",
                "-c", "shared_buffers=16MB",
                "-c", "max_connections=20",
                "-c", "fsync=off",
            ]  # fmt: skip
            name = f"postgres-ssl-{'on' if ssl else 'off'}"
            stack.enter_context(serving(name, argv, directory, [port], user=USER))
        yield Daemon("postgresql", ports, certificate, directory)
