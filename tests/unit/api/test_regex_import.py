"""RE2 (about 2.4 MB with its C++ library) is imported by the first pattern, not before."""

from __future__ import annotations

from ..fresh_python import run_fresh

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
    assert run_fresh(_SCRIPT) == {"without": False, "with": True, "refused": True}
