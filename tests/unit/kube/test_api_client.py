"""Pure helpers of the Kubernetes glue: error lines, Lease names, parsing stored objects."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from tcpmonitor.api import (
    TcpMonitor,
)
from tcpmonitor.kube.api_client import API_ERROR_REASONS, classify_api_error, describe_api_error
from tcpmonitor.kube.handlers import parse_monitor
from tcpmonitor.kube.leases import lease_name
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


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ApiException(status=429, reason="Too Many Requests"), "throttled"),
        (ApiException(status=403), "forbidden"),
        (ApiException(status=401), "unauthorized"),
        (ApiException(status=410), "gone"),
        (ApiException(status=503), "server_error"),
        (ApiException(status=504), "server_error"),
        (ApiException(status=422), "invalid"),
        (ApiException(status=418), "other"),
        (ConnectionRefusedError(111, "refused"), "unreachable"),
        (
            urllib3.exceptions.MaxRetryError(
                None, "/x", urllib3.exceptions.NewConnectionError(None, "refused")
            ),
            "unreachable",
        ),
        (
            urllib3.exceptions.MaxRetryError(
                None, "/x", urllib3.exceptions.ReadTimeoutError(None, "/x", "timed out")
            ),
            "timeout",
        ),
        (TimeoutError(), "timeout"),
        (ValueError("bug"), "other"),
    ],
)
def test_api_errors_are_classified_into_a_fixed_set_of_reasons(
    exc: BaseException, reason: str
) -> None:
    assert classify_api_error(exc) == reason
    assert reason in API_ERROR_REASONS
