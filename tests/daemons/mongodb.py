"""MongoDB's wire protocol, served by FerretDB (MongoDB itself is not packaged by Debian).

``.ci/provision-ferretdb`` builds FerretDB v1.24.0, the last release with a SQLite backend,
so it needs no database server behind it: plain and TLS listeners, data in the temp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.controlplane.processes import StartupError

from .runner import LOOPBACK, Daemon, Workspace, free_port, serving

FERRETDB_VERSION = "v1.24.0"
CACHE_ENV = "TCPMONITOR_FERRETDB_CACHE"


def ferretdb_binary() -> Path:
    """Where .ci/provision-ferretdb puts the binary (same default cache root)."""
    default = Path.home() / ".cache" / "tcpmonitor-operator" / "ferretdb"
    root = Path(os.environ.get(CACHE_ENV) or default)
    return root / FERRETDB_VERSION / "bin" / "ferretdb"


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    binary = ferretdb_binary()
    if not os.access(binary, os.X_OK):
        raise StartupError(f"{binary} is missing; run .ci/provision-ferretdb (needs Go)")
    directory = workspace.directory("ferretdb")
    certificate = workspace.pki.issue("ferretdb")
    plain, tls = free_port(), free_port()
    (directory / "data").mkdir()
    argv = [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{directory / 'data'}/",
        f"--state-dir={directory}",
        f"--listen-addr={LOOPBACK}:{plain}",
        f"--listen-tls={LOOPBACK}:{tls}",
        f"--listen-tls-cert-file={certificate.cert_path}",
        f"--listen-tls-key-file={certificate.key_path}",
        # No telemetry beacon to the internet, and no debug HTTP listener on a fixed port.
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=info",
    ]
    with serving("ferretdb", argv, directory, [plain, tls]):
        yield Daemon("mongodb", {"plain": plain, "implicit": tls}, certificate, directory)
