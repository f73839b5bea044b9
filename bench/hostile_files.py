"""What hostile manifest files cost ``tcpmonitor validate``, and what 10,000 monitors cost to load.

For each file of ``tests/hostile/files.py``: its size, the exit status, wall time and peak RSS
of ``tcpmonitor validate FILE`` in a child process (wait4, so the child alone). Then the time
to turn a 10,000-monitor file into objects: the bounded loader with libyaml and with the
pure-Python parser, and plain ``yaml.safe_load_all`` (what the loader did before) for both.
Each load is timed ``--rounds`` times and the median reported; these machines are noisy.

    PYTHONPATH=operator python bench/hostile_files.py [--monitors 10000] [--rounds 3]
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

from tcpmonitor.bounded_yaml import load_documents  # noqa: E402
from tcpmonitor.manifests import load_manifests  # noqa: E402


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


def hostile_table(directory: Path) -> None:
    print("| file | size | command | exit | wall s | peak RSS MB | first line of output |")
    print("|---|---|---|---|---|---|---|")
    for name, make in HOSTILE_FILES.items():
        path = make(directory)
        done = run_measured(["validate", str(path)], timeout=60)
        line = (done.stdout.splitlines() or done.stderr.splitlines() or [""])[0]
        line = line.replace(str(directory) + "/", "")
        print(
            f"| {name} | {_size(path)} | validate {path.name} | {done.code} "
            f"| {done.seconds:.2f} | {done.peak_rss_mb:.0f} | `{line[:110]}` |"
        )


def _median_seconds(load: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        load()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def load_times(directory: Path, count: int, rounds: int) -> None:
    path = directory / "monitors.yaml"
    path.write_text(monitors_file(count))
    data = path.read_bytes()
    c_loader = getattr(yaml, "CSafeLoader", None)
    print(f"\n{count} monitors, {len(data) / 1024 / 1024:.1f} MiB, median of {rounds}:\n")
    print("| load | seconds |")
    print("|---|---|")
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
    for label, load in rows:
        print(f"| {label} | {_median_seconds(load, rounds):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "operator"), os.environ.get("PYTHONPATH", "")]
    )
    with tempfile.TemporaryDirectory() as tmp:
        hostile_table(Path(tmp))
        load_times(Path(tmp), args.monitors, args.rounds)


if __name__ == "__main__":
    main()
