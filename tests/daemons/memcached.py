"""memcached: the plain text protocol on a TCP port (no UDP)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, serving


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("memcached")
    port = free_port()
    argv = [
        require("memcached"),
        "-l", LOOPBACK,
        "-p", str(port),
        "-U", "0",  # no UDP listener
        "-m", "8",
    ]  # fmt: skip
    # Started as nobody rather than with -u (memcached refuses root without it): its own
    # switch of user would clear the parent-death signal that ties it to the test session.
    with serving("memcached", argv, directory, [port], user="nobody"):
        yield Daemon("memcached", {"plain": port}, None, directory)
