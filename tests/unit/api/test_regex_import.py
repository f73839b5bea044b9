"""RE2 (about 2.4 MB with its C++ library) is imported by the first pattern, not before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs in a fresh interpreter: this one may have compiled a pattern already.
_SCRIPT = """
import json, sys
from tcpmonitor.api import TcpMonitorSpec
from tcpmonitor.scheduling.runtime import MonitorRuntime

seen = {}
TcpMonitorSpec.model_validate({"host": "db", "port": 5432, "send": "x"})
seen["without"] = "re2" in sys.modules
matches = {"source": "ResponseData", "comparison": "Matches", "target": "^\\\\+PONG"}
TcpMonitorSpec.model_validate({"host": "db", "port": 6379, "assertions": [matches]})
seen["with"] = "re2" in sys.modules
broken = matches | {"target": "a("}
try:
    TcpMonitorSpec.model_validate({"host": "db", "port": 6379, "assertions": [broken]})
except ValueError as exc:
    seen["refused"] = "not a valid RE2 regular expression" in str(exc)
print(json.dumps(seen))
"""


def test_re2_is_imported_by_the_first_pattern_only() -> None:
    operator = Path(__file__).resolve().parents[3] / "operator"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(operator), "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"without": False, "with": True, "refused": True}
