"""A regular expression that backtracking engines take exponential time over.

``(a+)+$`` against forty ``a`` and a ``!``: Python's ``re`` needs about 2**40 steps, on the event
loop every monitor shares, on every read. With RE2 it is decided at once; the process must keep
probing its neighbours on time, answer /healthz, and stop on SIGTERM. Patterns RE2 cannot
compile never get that far: ``tcpmonitor validate`` (and ``run``) refuse them with one line.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .bystander import Bystander
from .listeners import Listener, reply
from .standalone import standalone, write_manifests

EVIL_REPLY = b"a" * 40 + b"!"
INTERVAL = 1.0
WINDOW = 6.0


def regex_monitor(name: str, port: int, pattern: str) -> dict[str, Any]:
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": "evil"},
        "spec": {
            "host": "127.0.0.1",
            "port": port,
            "interval": "1s",
            "timeout": "500ms",
            "assertions": [{"source": "ResponseData", "comparison": "Matches", "target": pattern}],
        },
    }


def healthz_seconds(port: int) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1.0) as response:
        assert response.status == 200
    return time.monotonic() - started


def test_catastrophic_backtracking_pattern_is_decided_and_hurts_nobody(tmp_path: Path) -> None:
    with Bystander() as bystander, Listener(reply(EVIL_REPLY, hold=False)) as target:
        manifests = write_manifests(
            tmp_path / "monitors.yaml",
            regex_monitor("regex", target.port, "(a+)+$"),
            bystander.monitor(),
        )
        logs = tmp_path / "run.log"
        with standalone("-f", str(manifests), logs=logs) as (proc, port):
            start = time.monotonic()
            health = []
            while time.monotonic() - start < WINDOW:
                health.append(healthz_seconds(port))
                time.sleep(0.2)
            figures = bystander.assert_on_time(INTERVAL, window=WINDOW, start=start)
            proc.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            proc.wait(timeout=5)
            stopped_in = time.monotonic() - stopping
        output = logs.read_text()
    # The hostile monitor got its verdict, on every interval.
    assert re.search(r"TargetDown evil/regex: .*ASSERTION_FAILED", output), output
    assert len(target.accepts) >= WINDOW / INTERVAL * 0.7, output
    assert max(health) < 1.0
    assert proc.returncode == 0, output
    assert stopped_in < 5.0
    print(
        f"\nbystander probes {figures['count']:.0f}, lateness p99 {figures['p99'] * 1000:.1f} ms "
        f"max {figures['max'] * 1000:.1f} ms; /healthz max {max(health) * 1000:.1f} ms; "
        f"hostile probes {len(target.accepts)}; SIGTERM to exit {stopped_in:.2f} s"
    )


def bad_regex_file(tmp_path: Path) -> Path:
    return write_manifests(
        tmp_path / "bad.yaml",
        regex_monitor("lookahead", 1, "(?=x)"),
        regex_monitor("backreference", 1, r"(a)\1"),
    )


def test_validate_refuses_what_re2_cannot_compile_with_one_line_each(tmp_path: Path) -> None:
    path = bad_regex_file(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tcpmonitor", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result
    assert result.stdout.splitlines() == [
        f"{path}:doc 1: spec.assertions[0].target: '(?=x)' is not a valid RE2 regular "
        "expression: invalid perl operator: (?=",
        f"{path}:doc 2: spec.assertions[0].target: '(a)\\\\1' is not a valid RE2 regular "
        "expression: invalid escape sequence: \\1",
    ]


def test_run_refuses_to_start_on_what_re2_cannot_compile(tmp_path: Path) -> None:
    path = bad_regex_file(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tcpmonitor", "run", "-f", str(path), "--metrics-port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all("is not a valid RE2 regular expression" in x for x in lines)
