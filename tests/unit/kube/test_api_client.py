"""Pure helpers of the Kubernetes glue: error lines, Lease names, location entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from tcpmonitor.api import (
    MonitorState,
    ProbeResult,
    Problem,
    TcpMonitor,
    TcpMonitorStatus,
    Timings,
    Verdict,
)
from tcpmonitor.kube.api_client import describe_api_error
from tcpmonitor.kube.handlers import parse_monitor
from tcpmonitor.kube.leases import lease_name
from tcpmonitor.kube.status_writer import location_entry
from tcpmonitor.reporting import bounds_problem


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


def test_an_object_stored_before_the_interval_bound_is_read_for_the_runtime_to_report() -> None:
    body = {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": "old", "namespace": "ns"},
        "spec": {"host": "h", "port": 1, "interval": "0s", "timeout": "0s"},
    }
    with pytest.raises(ValidationError, match="must be at least 1s"):
        TcpMonitor.model_validate(body)  # written today: refused, as by the API server
    stored = parse_monitor(body)  # read back from etcd: kept, so it is reported, not dropped
    problem = bounds_problem(stored.spec, min_interval=1.0)
    assert problem is not None and problem.reason == "IntervalTooShort"
    with pytest.raises(ValidationError, match="must not exceed interval"):
        parse_monitor({**body, "spec": {"host": "h", "port": 1, "interval": "0s"}})
