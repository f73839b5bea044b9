"""``tcpmonitor run --policy``: the operator's target policy from a file, reloaded on SIGHUP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml


@pytest.fixture
def counting_listener() -> Iterator[tuple[int, list[float]]]:
    accepted: list[float] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            accepted.append(time.monotonic())
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    sock.close()


def _write_policy(path: Path, *rules: dict[str, object]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tcpmonitor.dev/v1alpha1",
                "kind": "TcpMonitorPolicy",
                "metadata": {"name": "local"},
                "spec": {"rules": list(rules)},
            }
        )
    )


def _wait_for(process: subprocess.Popen[str], fragment: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if fragment in line:
            return line
    raise AssertionError(f"{fragment!r} not printed within {timeout}s: {''.join(seen)}")


def test_run_refuses_by_policy_and_reloads_it_on_sighup(
    tmp_path: Path, counting_listener: tuple[int, list[float]]
) -> None:
    port, accepted = counting_listener
    monitor = tmp_path / "m.yaml"
    monitor.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tcpmonitor.dev/v1alpha1",
                "kind": "TcpMonitor",
                "metadata": {"name": "local", "namespace": "team"},
                "spec": {"host": "127.0.0.1", "port": port, "interval": "1s", "timeout": "500ms"},
            }
        )
    )
    policy = tmp_path / "policy.yaml"
    _write_policy(policy)  # no rule: the built-in refusal of loopback decides
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tcpmonitor", "run", "-f", str(monitor)),
            *("--policy", str(policy), "--metrics-port", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _wait_for(process, "TargetDown team/local", 15)
        assert "TARGET_FORBIDDEN" in line and "builtin/loopback" in line
        time.sleep(1.5)
        assert accepted == []
        _write_policy(policy, {"name": "lo", "action": "Allow", "cidrs": ["127.0.0.0/8"]})
        process.send_signal(signal.SIGHUP)
        _wait_for(process, "TargetUp team/local", 15)
        # The kernel completes the handshake before the listener's accept() returns.
        deadline = time.monotonic() + 5
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert accepted
    finally:
        process.terminate()
        process.wait(10)
