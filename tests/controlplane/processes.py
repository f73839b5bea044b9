"""Child processes that must not outlive the test session.

etcd and kube-apiserver keep ports and temp files busy, so a leaked pair breaks the
next run in confusing ways. Three layers make sure they die: the owner stops them
explicitly (SIGTERM, then SIGKILL), an ``atexit`` hook covers exceptions and
Ctrl-C, and on Linux the kernel delivers SIGKILL to them if the Python process
itself is killed (``PR_SET_PDEATHSIG``), where no Python code can run.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_BYTES = 64 * 1024
_KILL_REAP_TIMEOUT = 10.0


class StartupError(RuntimeError):
    """A component did not become ready; the message carries its log tail."""


def _parent_death_hook() -> Callable[[], None] | None:
    """Build a pre-exec hook that ties the child's life to ours (Linux only).

    The libc lookup happens here, before fork, so the child only makes one
    foreign call. Note that the kernel ties the signal to the *thread* that
    forked, so start processes from a thread that lives as long as they should.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _groups_of(user: str) -> tuple[int, list[int]]:
    """The user's primary and supplementary groups, so the child keeps none of root's."""
    gid = pwd.getpwnam(user).pw_gid
    return gid, os.getgrouplist(user, gid)


class ManagedProcess:
    """One long-running child whose output goes to a log file we can quote on failure."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        # Run as this user (we are root): daemons such as postgres refuse to run as root.
        # Popen switches user before the pre-exec hook, so the parent-death signal, which
        # the kernel clears on a change of credentials, is set after the switch and holds.
        self.user = user
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self) -> None:
        """Start the child; after stop() or kill(), the same argv again.

        The log is appended to, with a marker line, so one file tells the whole
        story of a component that a fault test restarted.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._log = self.log_path.open("ab")
        identity = _groups_of(self.user) if self.user else None
        if self._log.tell() > 0:
            self._log.write(f"--- {self.name} started again by the test harness ---\n".encode())
            self._log.flush()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            user=self.user,
            group=identity[0] if identity else None,
            extra_groups=identity[1] if identity else None,
            # Our own session: a Ctrl-C in the terminal reaches only us, and we stop
            # the children in dependency order (API server before etcd).
            start_new_session=True,
            # A fault test may restart a component while other threads run (a proxy,
            # an HTTP client). preexec_fn is then formally unsafe (a lock another
            # thread held at the fork stays held in the child), but this hook takes
            # none of ours: prctl (looked up before the fork), getppid, kill.
            preexec_fn=_parent_death_hook(),  # noqa: PLW1509
        )

    def exit_code(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
                text = log.read().decode(errors="replace")
        except OSError as error:
            return f"<cannot read {self.log_path}: {error}>"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, problem: str) -> StartupError:
        return StartupError(
            f"{self.name} {problem}\ncommand: {' '.join(self.argv)}\n"
            f"last lines of its log ({self.log_path.name}):\n{self.log_tail()}"
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it holds, failing fast if the process dies meanwhile."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            code = self.exit_code()
            if code is not None:
                raise self.failure(f"exited with code {code} before {what}")
            if ready():
                return
            if time.monotonic() >= deadline:
                raise self.failure(f"did not report {what} within {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, timeout: float) -> None:
        """SIGTERM, wait, then SIGKILL; safe to call repeatedly and on a dead process.

        Afterwards start() runs the same argv again, appending to the same log.
        """
        popen, self._popen = self._popen, None
        if popen is not None and popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL and reap at once: a crash, with no chance to shut down cleanly.

        SIGKILL cannot be caught or delayed, so the wait is short; the bound only
        guards against a process stuck in uninterruptible I/O.
        """
        popen, self._popen = self._popen, None
        if popen is not None and popen.poll() is None:
            popen.kill()
            popen.wait(_KILL_REAP_TIMEOUT)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
