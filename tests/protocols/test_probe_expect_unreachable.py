"""Expected-unreachable (issue 12): a closed port is Up, a daemon's open port is Down."""

from __future__ import annotations

from tests.daemons.runner import Daemon, free_port

from .probe_cli import assert_down, assert_up, probe


def test_closed_port_is_up() -> None:
    # Nothing listens here: the kernel just handed the port out and it was closed again.
    outcome = probe(f"127.0.0.1:{free_port()}", "--expect-unreachable")
    assert_up(outcome)


def test_listening_daemon_is_unexpectedly_reachable(memcached_daemon: Daemon) -> None:
    outcome = probe(f"127.0.0.1:{memcached_daemon.port('plain')}", "--expect-unreachable")
    assert_down(outcome, "UNEXPECTEDLY_REACHABLE")
