"""Start a daemon as a tracked child on loopback ports, wait until it listens, stop it.

Built on the control plane's ManagedProcess: the child gets its own session and dies with
us (PR_SET_PDEATHSIG, backed by a watchdog for daemons that lose it), and a daemon that does
not come up fails with its log tail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.controlplane.processes import ManagedProcess, StartupError

from .pki import ServerCertificate, TestPki

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SETUP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Daemon:
    """A running daemon: its ports by purpose, and the certificate its TLS ports serve.

    Purposes: ``plain`` (no TLS at all), ``starttls`` (plaintext first, upgrade offered),
    ``implicit`` (TLS from the first byte), ``no_starttls`` (a server of the same kind
    without TLS, which neither offers nor accepts the upgrade); dovecot names its ports by
    protocol (``imap``, ``imaps``, ``pop3``, ``pop3s``, ``imap_no_starttls``, ...).
    """

    name: str
    ports: Mapping[str, int]
    certificate: ServerCertificate | None = None
    directory: Path = field(default=Path())

    def port(self, purpose: str) -> int:
        return self.ports[purpose]


class Workspace:
    """The session's temp dir and test CA; every daemon gets a subdirectory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Daemons that drop privileges (postgres, mysql, dovecot, prosody) must reach their
        # files: mkdtemp makes 0700 directories.
        root.chmod(0o755)
        self.pki = TestPki(root)

    @classmethod
    @contextmanager
    def temporary(cls) -> Iterator[Workspace]:
        root = Path(tempfile.mkdtemp(prefix="tcpmonitor-daemons-"))
        try:
            yield cls(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def directory(self, daemon: str, owner: str | None = None) -> Path:
        path = self.root / daemon
        path.mkdir(mode=0o755)
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path


def require(binary: str) -> str:
    """The path of a daemon's binary, or a failure that says how to install it."""
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if found is None and Path(binary).is_absolute() and os.access(binary, os.X_OK):
        found = binary
    if found is None:
        raise StartupError(f"{binary} is not installed; run .ci/provision-daemons (as root)")
    return found


_handed_out: set[int] = set()


def free_port() -> int:
    """A port the kernel just handed out; daemons bind it moments later, so races are rare.

    Never the same port twice in a session: the kernel may offer a port again once the
    probing socket is closed, and two listeners of one daemon would then collide.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port: int = probe.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise StartupError("no fresh loopback port after 100 tries")


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def run_setup(
    argv: Sequence[str],
    what: str,
    *,
    user: str | None = None,
    timeout: float = SETUP_TIMEOUT,
    input_text: str | None = None,
) -> str:
    """Run a one-shot setup command (initdb, ssh-keygen, ...); fail with its output."""
    try:
        completed = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        command = " ".join(argv)
        raise StartupError(f"{what} did not finish within {timeout:.0f}s: {command}") from None
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).splitlines()[-40:]
        raise StartupError(
            f"{what} failed with code {completed.returncode}\ncommand: {' '.join(argv)}\n"
            + "\n".join(output)
        )
    return completed.stdout


class Watchdog:
    """Kills a daemon's process group once this test process is gone, however it went.

    PR_SET_PDEATHSIG (set by ManagedProcess) does not hold for every daemon: the kernel
    clears it when a process changes its credentials, and postfix's master does so (it
    switches its effective ids to the mail owner at times). A small shell in a session of
    its own polls for our pid and, once it disappears, SIGKILLs the group; after a normal
    stop it is simply killed.
    """

    POLL_SECONDS = 1

    def __init__(self, group: int) -> None:
        script = (
            f'while kill -0 "$1" 2>/dev/null; do sleep {self.POLL_SECONDS}; done; '
            'kill -KILL "-$2" 2>/dev/null'
        )
        self._popen = subprocess.Popen(
            ["sh", "-c", script, "daemon-watchdog", str(os.getpid()), str(group)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def cancel(self) -> None:
        self._popen.kill()
        self._popen.wait()


def _stop(process: ManagedProcess) -> None:
    group = process.pid
    try:
        process.stop(STOP_TIMEOUT)
    finally:
        # Workers (smtpd, imap-login, postgres backends) live in the daemon's session; a
        # master that died badly could leave them behind holding ports.
        if group is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


@contextmanager
def serving(
    name: str,
    argv: Sequence[str],
    directory: Path,
    ports: Iterable[int],
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
    log_name: str | None = None,
) -> Iterator[ManagedProcess]:
    """Run ``argv`` in the foreground until the block ends, once every port accepts.

    Output goes to ``directory/NAME.log``, or to ``log_name`` for a daemon that writes its
    own log file there, so that a failure quotes the lines that explain it.
    """
    wanted = sorted(ports)
    log_path = directory / (log_name or f"{name}.log")
    process = ManagedProcess(name, argv, log_path, env=env, user=user)
    process.start()
    assert process.pid is not None
    # start_new_session: the daemon's pid is its process group, which holds its workers.
    watchdog = Watchdog(process.pid)
    try:
        process.wait_until(
            lambda: all(accepts(port) for port in wanted),
            timeout,
            f"listening on {LOOPBACK} port(s) {', '.join(map(str, wanted))}",
        )
        yield process
    finally:
        _stop(process)
        watchdog.cancel()
