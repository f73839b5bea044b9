"""Hostile manifest files: refused with one line, in bounded memory, hurting no other monitor.

``validate`` and ``probe -f`` are run as child processes so their peak memory can be measured
alone (wait4); ``run -f`` gets each hostile file written into its directory and a SIGHUP, while
a good monitor's target counts the probes it receives.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from .bystander import Bystander
from .files import HOSTILE_FILES, run_measured
from .standalone import standalone, write_manifests

MAX_RSS_MB = 200  # an idle tcpmonitor is about 60 MB; a 1 KB bomb used to take gigabytes


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
@pytest.mark.parametrize(
    ("command", "code"),
    [(["validate"], 1), (["probe", "-f"], 2)],
    ids=["validate", "probe"],
)
def test_a_hostile_file_is_one_line_in_bounded_memory(
    tmp_path: Path, name: str, command: list[str], code: int
) -> None:
    path = HOSTILE_FILES[name](tmp_path)
    done = run_measured([*command, str(path)], timeout=30)
    assert done.code == code, done.stderr
    # validate prints problems on stdout and a count on stderr; probe prints them on stderr.
    problems = (done.stdout if command == ["validate"] else done.stderr).splitlines()
    assert len(problems) == 1, problems
    assert problems[0].removeprefix("tcpmonitor: ").startswith(f"{path}"), problems
    assert "Traceback" not in done.stderr
    assert done.peak_rss_mb < MAX_RSS_MB, f"{name}: peak RSS {done.peak_rss_mb:.0f} MB"
    assert done.seconds < 20


def _peak_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _wait_for(logs: Path, text: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while logs.read_text(errors="replace").count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} #{count}: {logs.read_text()[-2000:]}")
        time.sleep(0.05)


def test_run_refuses_every_hostile_reload_and_keeps_probing_the_old_set(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    logs = tmp_path / "run.log"
    with Bystander() as target:
        write_manifests(manifests / "good.yaml", target.monitor())
        with standalone("-f", str(manifests), logs=logs) as (proc, _):
            start = time.monotonic()
            for refusals, make in enumerate(HOSTILE_FILES.values(), start=1):
                path = make(manifests)
                proc.send_signal(signal.SIGHUP)
                _wait_for(logs, "reload refused", refusals)
                assert f"tcpmonitor: {path}" in logs.read_text(errors="replace")
                path.unlink()
            time.sleep(2)  # the old set is still probed after the last refusal
            proc.send_signal(signal.SIGHUP)
            _wait_for(logs, "reloaded 1 monitor(s)", 1)
            time.sleep(2)
            peak = _peak_rss_mb(proc)
            window = time.monotonic() - start
            assert proc.poll() is None
    text = logs.read_text(errors="replace")
    assert "Traceback" not in text
    assert peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB"
    figures = target.assert_on_time(1.0, window=window, start=start)
    print(f"bystander over {window:.1f}s of hostile reloads: {figures}")


def _many_monitors(count: int) -> str:
    return "".join(
        "---\napiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\n"
        f"metadata: {{name: m{i}, namespace: many}}\n"
        "spec:\n  host: 127.0.0.1\n  port: 9\n  interval: 1h\n"
        "  assertions: [{source: ResponseData, comparison: Contains, target: x}]\n"
        for i in range(count)
    )


def test_reading_a_large_file_on_reload_does_not_delay_the_probes(tmp_path: Path) -> None:
    """10,000 monitors and a broken last document: seconds of parsing, in a thread."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    logs = tmp_path / "run.log"
    with Bystander() as target:
        write_manifests(manifests / "good.yaml", target.monitor())
        with standalone("-f", str(manifests), logs=logs) as (proc, _):
            time.sleep(1.5)
            start = time.monotonic()
            (manifests / "many.yaml").write_text(_many_monitors(10_000) + "---\n[broken\n")
            for reloads in range(1, 3):
                proc.send_signal(signal.SIGHUP)
                _wait_for(logs, "reload refused", reloads)
            took = time.monotonic() - start
            time.sleep(1.5)
            window = time.monotonic() - start
    assert "many.yaml:doc 10001: YAML error at line" in logs.read_text()
    figures = target.assert_on_time(1.0, window=window, start=start)
    print(f"two reloads of 10,000 monitors took {took:.1f}s; bystander: {figures}")
