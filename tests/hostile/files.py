"""Hostile manifest files, made on the spot, and a command run with its peak memory measured.

Shared by ``test_files.py`` and ``bench/hostile_files.py``. Every file is small on disk (the
64 MiB one is sparse) and would, without the loader's limits, hang a reader, raise a
traceback, or grow a process past a gigabyte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """Each anchor is ``width`` uses of the one before: width**levels scalars, in < 1 KB."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _write(name: str, text: str) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        path = directory / name
        path.write_text(text)
        return path

    return make


def _fifo(directory: Path) -> Path:
    path = directory / "fifo.yaml"
    os.mkfifo(path)
    return path


def _dev_zero(directory: Path) -> Path:
    path = directory / "zero.yaml"
    path.symlink_to("/dev/zero")
    return path


def _sparse(directory: Path) -> Path:
    path = directory / "sparse.yaml"
    with path.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    return path


MONITOR = (
    "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\n"
    "metadata: {name: evil, namespace: evil}\n"
    "spec:\n  host: HOST\n  port: 80\n"
)
# The laughs under an unknown field, and the host one alias of 9**9 scalars: an error message
# that shows the value it got would walk all of them.
MONITOR_BOMB = MONITOR.replace(
    "spec:", "laughs:\n" + textwrap.indent(billion_laughs(), "  ") + "spec:"
).replace("HOST", "*l8")

# name -> how to make it in a directory (the path returned is what the commands are given)
HOSTILE_FILES: dict[str, Callable[[Path], Path]] = {
    "billion-laughs": _write("bomb.yaml", billion_laughs()),
    "bomb-in-a-monitor": _write("monitor-bomb.yaml", MONITOR_BOMB),
    "deep-block": _write("deep-block.yaml", "- " * 20_000 + "x\n"),
    "deep-flow": _write("deep-flow.yaml", "a: " + "[" * 20_000 + "]" * 20_000 + "\n"),
    "items-contain-themselves": _write(
        "items-loop.yaml", "apiVersion: v1\nkind: List\nitems: &i [*i]\n"
    ),
    "list-inside-itself": _write(
        "list-loop.yaml", "&list {apiVersion: v1, kind: List, items: [*list]}\n"
    ),
    "secret-string-metadata": _write(
        "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: oops\ndata: [a]\n"
    ),
    "configmap-string-data": _write(
        "configmap.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: text\n"
    ),
    "huge-integer": _write("int.yaml", "port: " + "9" * 100_000 + "\n"),
    # No alias, but one value per byte or two: pydantic used to report each of 400,000 items.
    "wide-list-in-a-monitor": _write(
        "wide.yaml",
        MONITOR.replace("HOST", "example.com")
        + "  assertions: ["
        + ",".join(["1"] * 400_000)
        + "]\n",
    ),
    "wide-config-map": _write(
        "wide-configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n"
        + "".join(f"  {i}: x\n" for i in range(400_000)),
    ),
    "fifo": _fifo,
    "dev-zero": _dev_zero,
    "sparse-64MiB": _sparse,
}


@dataclass(frozen=True)
class Measured:
    code: int  # -9 when killed after the timeout
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float


# The child reports its own peak: VmHWM of the memory it mapped after exec. wait4's ru_maxrss
# would not do: Linux carries the parent's high-water mark across fork and exec, so a child of
# a large test process "peaks" at its parent's size.
_REPORT_PEAK = """
import atexit, runpy, sys
def _peak(path=sys.argv[1]):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(path, "w").write(line.split()[1])
atexit.register(_peak)
sys.argv = ["tcpmonitor", *sys.argv[2:]]
runpy.run_module("tcpmonitor", run_name="__main__")
"""


def run_measured(
    argv: list[str],
    *,
    timeout: float = 60.0,
    pythonpath: str | None = None,
    max_memory: int | None = None,
) -> Measured:
    """Run ``python -m tcpmonitor ARGV`` with its output in files; its exit status, output,
    wall time and peak RSS (as the child saw it; NaN when it was killed). ``pythonpath`` runs
    another copy of the package (an older commit); ``max_memory`` caps its address space."""

    cap = [] if max_memory is None else ["prlimit", f"--as={max_memory}", "--"]  # execs: same pid
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        peak_path = Path(tmp) / "peak"
        started = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                [*cap, sys.executable, "-c", _REPORT_PEAK, str(peak_path), *argv],
                stdout=out,
                stderr=err,
                env=env,
            )
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
        peak = peak_path.read_text() if peak_path.exists() else ""
        return Measured(
            code,
            out_path.read_text(errors="replace"),
            err_path.read_text(errors="replace"),
            time.monotonic() - started,
            int(peak) / 1024 if peak else float("nan"),
        )
