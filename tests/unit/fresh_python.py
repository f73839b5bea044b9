"""A script run by a fresh interpreter with the operator's package on its path, for what this
process cannot show any more (which modules an import pulls in, once they are loaded here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

OPERATOR = Path(__file__).resolve().parents[2] / "operator"


def run_fresh(script: str, *args: str) -> Any:
    """What ``script`` printed as JSON on its last line; fails the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(OPERATOR), "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])
