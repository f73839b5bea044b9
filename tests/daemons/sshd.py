"""openssh-server: ``sshd -D`` with a config and an Ed25519 host key made in the temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, run_setup, serving

# sshd's privilege-separation directory; the package's init script normally creates it.
PRIVSEP_DIRECTORY = Path("/run/sshd")


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("sshd")
    port = free_port()
    host_key = directory / "ssh_host_ed25519_key"
    run_setup(
        [require("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(host_key)],
        "ssh-keygen",
    )
    PRIVSEP_DIRECTORY.mkdir(mode=0o755, exist_ok=True)
    config = directory / "sshd_config"
    config.write_text(
        f"""\
ListenAddress {LOOPBACK}:{port}
HostKey {host_key}
PidFile {directory / "sshd.pid"}
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AuthorizedKeysFile none
"""
    )
    # -D: foreground; -e: log to stderr (our log file) instead of syslog. sshd wants its
    # absolute path to re-exec itself for every connection.
    argv = [require("sshd"), "-D", "-e", "-f", str(config)]
    with serving("sshd", argv, directory, [port]):
        yield Daemon("sshd", {"plain": port}, None, directory)
