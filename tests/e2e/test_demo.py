"""The newcomer's one command: ``python -m tests.controlplane --demo`` shows states streaming,
and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.controlplane.build import REPO_ROOT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.usefixtures("kube_cluster")  # the control-plane binaries are built (or skipped)
def test_demo_streams_states_and_ctrl_c_stops_everything() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "tests.controlplane", "--demo", "--no-examples"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # Ctrl-C reaches the whole group, as in a terminal
    )
    lines: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        lines.extend(iter(demo.stdout.readline, ""))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = "".join(lines)
            if re.search(r"demo\s+steady\s+127\.0\.0\.1\s+\d+\s+Up", text) and re.search(
                r"demo\s+flapping\s+127\.0\.0\.1\s+\d+\s+Up", text
            ):
                break
            assert demo.poll() is None, text
            time.sleep(0.5)
        else:
            raise AssertionError("no Up state streamed:\n" + "".join(lines))
        text = "".join(lines)
        operator_pid = int(re.search(r"operator: pid (\d+)", text).group(1))  # type: ignore[union-attr]
        workdir = Path(re.search(r"kubeconfig:\s+(\S+)/", text).group(1))  # type: ignore[union-attr]
        assert _alive(operator_pid) and workdir.is_dir()
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(30) == 0, "".join(lines)
        reader.join(5)
        assert not _alive(operator_pid)
        assert not workdir.exists(), "the control plane's directory is removed"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
