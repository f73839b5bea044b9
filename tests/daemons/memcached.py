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
        "-u", "nobody",  # memcached refuses root without -u
    ]  # fmt: skip
    with serving("memcached", argv, directory, [port]):
        yield Daemon("memcached", {"plain": port}, None, directory)
