"""Pure helpers of the Kubernetes glue: error lines, Lease names, location entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from tcpmonitor.api import MonitorState, ProbeResult, Problem, TcpMonitorStatus, Timings, Verdict
from tcpmonitor.kube.api_client import describe_api_error
from tcpmonitor.kube.leases import lease_name
from tcpmonitor.kube.status_writer import location_entry


def test_api_errors_become_one_line_with_the_servers_message() -> None:
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps({"message": 'secrets "x" is forbidden: User "u" cannot get'})
    assert describe_api_error(exc) == '403 Forbidden: secrets "x" is forbidden: User "u" cannot get'
    bare = ApiException(status=500, reason="Internal Server Error")
    assert describe_api_error(bare) == "500 Internal Server Error"
    assert describe_api_error(RuntimeError("boom\nmore")) == "boom"


def test_lease_names_are_valid_object_names() -> None:
    assert lease_name("tcpmonitor-runner", "Host_Name.local-1234") == (
        "tcpmonitor-runner-host-name-local-1234"
    )
    assert len(lease_name("p", "x" * 400)) <= 253


def test_location_entry_summarises_the_runners_view() -> None:
    result = ProbeResult(
        state=Verdict.DOWN,
        started_at=datetime(2026, 11, 21, tzinfo=UTC),
        remote_address="10.0.0.1:443",
        timings=Timings(connect=3.0, total=3.5),
        error=Problem(code="CONNECT_TIMEOUT", message="10.0.0.1:443: connect timed out"),
    )
    status = TcpMonitorStatus(
        state=MonitorState.DOWN,
        last_result=result,
        consecutive_failures=3,
        last_probe_time=result.started_at,
    )
    entry = location_entry(status, "eu-west", "runner-7")
    assert (entry.name, entry.state, entry.runner) == ("eu-west", MonitorState.DOWN, "runner-7")
    assert (entry.error_code, entry.total_ms, entry.consecutive_failures) == (
        "CONNECT_TIMEOUT",
        3.5,
        3,
    )
    assert entry.message is not None and entry.message.startswith("CONNECT_TIMEOUT 10.0.0.1:443")
