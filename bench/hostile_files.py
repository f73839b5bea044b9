"""What hostile manifest files cost ``tcpmonitor validate``, and what 10,000 monitors cost to load.

For each file of ``tests/hostile/files.py``: its size, the exit status, wall time and peak RSS
of ``tcpmonitor validate FILE`` in a child process (wait4, so the child alone). Then the time
to turn a 10,000-monitor file into objects: the bounded loader with libyaml and with the
pure-Python parser, and plain ``yaml.safe_load_all`` (what the loader did before) for both.
Each load is timed ``--rounds`` times, round-robin; the minimum and the median are
reported, because these machines are noisy.

    PYTHONPATH=operator python bench/hostile_files.py [--monitors 10000] [--rounds 3]
    git archive COMMIT operator | tar -x -C /tmp/old
    PYTHONPATH=operator python bench/hostile_files.py --code /tmp/old/operator
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402
from tests.hostile.files import HOSTILE_FILES, run_measured  # noqa: E402

from tcpmonitor.standalone.bounded_yaml import load_documents  # noqa: E402
from tcpmonitor.standalone.manifests import load_manifests  # noqa: E402


def monitors_file(count: int) -> str:
    """Monitors as people write them: labels, a payload, two assertions, TLS."""
    return "".join(
        f"""---
apiVersion: tcpmonitor.dev/v1alpha1
kind: TcpMonitor
metadata:
  name: m{i}
  namespace: default
  labels: {{team: a, tier: db}}
spec:
  host: db{i}.example.com
  port: 5432
  interval: 30s
  timeout: 5s
  send: "PING\\r\\n"
  assertions:
    - {{source: ResponseData, comparison: Contains, target: PONG}}
    - {{source: ResponseTime, comparison: LessThan, target: 500ms}}
  tls: {{enabled: true, serverName: db.example.com, expiryWarning: 30d}}
"""
        for i in range(count)
    )


def _size(path: Path) -> str:
    size = os.stat(path).st_size
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.0f} MiB"
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"


def hostile_table(directory: Path, code: Path | None) -> None:
    """With ``code``, the package in that directory runs instead (``git archive`` of an
    older commit), in 1.5 GB of address space and 20 seconds at most."""
    if code is not None:
        print(f"tcpmonitor from {code}, capped at 1.5 GB of address space and 20 s\n")
    print("| file | size | command | exit | wall s | peak RSS MB | first line of output |")
    print("|---|---|---|---|---|---|---|")
    for name, make in HOSTILE_FILES.items():
        path = make(directory)
        if code is None:
            done = run_measured(["validate", str(path)], timeout=60)
        else:
            done = run_measured(
                ["validate", str(path)],
                timeout=20,
                pythonpath=str(code),
                max_memory=1536 * 1024 * 1024,
            )
        lines = done.stdout.splitlines() + done.stderr.splitlines()
        # The old code's tracebacks end with the line that says what happened.
        line = (lines[-1] if "Traceback" in done.stderr else (lines or [""])[0]) if lines else ""
        if done.code == -9:
            line = "killed after the timeout"
        line = line.replace(str(directory) + "/", "")
        print(
            f"| {name} | {_size(path)} | validate {path.name} | {done.code} "
            f"| {done.seconds:.2f} | {done.peak_rss_mb:.0f} | `{line[:160]}` |"
        )


def load_times(directory: Path, count: int, rounds: int) -> None:
    path = directory / "monitors.yaml"
    path.write_text(monitors_file(count))
    data = path.read_bytes()
    c_loader = getattr(yaml, "CSafeLoader", None)
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("before: yaml.safe_load_all (pure-Python)", lambda: list(yaml.safe_load_all(data))),
        (
            "bounded_yaml.load_documents, pure-Python parser",
            lambda: list(load_documents(data, loader=yaml.SafeLoader)),
        ),
    ]
    if c_loader is not None:
        rows += [
            (
                "yaml.load_all, CSafeLoader (no checks)",
                lambda: list(yaml.load_all(data, Loader=c_loader)),
            ),
            (
                "bounded_yaml.load_documents, libyaml",
                lambda: list(load_documents(data, loader=c_loader)),
            ),
        ]
    rows.append(
        (
            "load_manifests(deep=False): read, load, validate",
            lambda: load_manifests([path], deep=False),
        )
    )
    # Rounds go round-robin over the loaders, so a busy spell on the machine hits them alike.
    times: dict[str, list[float]] = {label: [] for label, _ in rows}
    for _ in range(rounds):
        for label, load in rows:
            started = time.perf_counter()
            load()
            times[label].append(time.perf_counter() - started)
    print(f"\n{count} monitors, {len(data) / 1024 / 1024:.1f} MiB, {rounds} rounds:\n")
    print("| load | min s | median s |")
    print("|---|---|---|")
    for label, _ in rows:
        print(f"| {label} | {min(times[label]):.2f} | {statistics.median(times[label]):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--code",
        type=Path,
        help="run validate from this copy of operator/ (e.g. git archive of an older commit) "
        "and skip the load times",
    )
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "operator"), os.environ.get("PYTHONPATH", "")]
    )
    with tempfile.TemporaryDirectory() as tmp:
        hostile_table(Path(tmp), args.code)
        if args.code is None:
            load_times(Path(tmp), args.monitors, args.rounds)


if __name__ == "__main__":
    main()
