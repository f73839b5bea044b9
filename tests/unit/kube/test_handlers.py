"""``parse_monitor``: a watched object, as kopf hands it over, into the model the sinks use."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest
from pydantic import ValidationError

from tcpmonitor.api import MonitorState, TcpMonitor
from tcpmonitor.kube.handlers import parse_monitor
from tcpmonitor.probe import PlanError, ProbeMaterial, compile_plan

WATCHED: dict[str, Any] = {
    "apiVersion": "tcpmonitor.dev/v1alpha1",
    "kind": "TcpMonitor",
    "metadata": {
        "name": "shop",
        "namespace": "web",
        "uid": "6f1c",
        "generation": 3,
        "resourceVersion": "4711",
        "creationTimestamp": "2026-11-21T12:00:00Z",
        "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update"}],
        "labels": {"team": "shop"},
    },
    "spec": {"host": "shop.example.com", "port": 443, "interval": "30s"},
    "status": {
        "observedGeneration": 3,
        "state": "Down",
        "consecutiveFailures": 4,
        "lastProbeTime": "2026-11-21T12:05:00Z",
        "locations": [{"name": "eu-west", "state": "Down", "runner": "runner-1"}],
    },
}


def watched(**changes: Any) -> dict[str, Any]:
    """The watched object with top-level parts replaced; ``None`` removes a part."""
    body = copy.deepcopy(WATCHED)
    for part, value in changes.items():
        if value is None:
            body.pop(part)
        else:
            body[part] = value
    return body


def errors_of(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        parse_monitor(body)
    return [(error["loc"], error["type"]) for error in caught.value.errors()]


def test_a_watched_object_becomes_the_monitor_with_its_status() -> None:
    monitor = parse_monitor(dict(kopf.Body(watched())))
    assert monitor.key == ("web", "shop")
    assert (monitor.metadata.uid, monitor.metadata.generation) == ("6f1c", 3)
    assert monitor.metadata.labels == {"team": "shop"}
    assert (monitor.spec.host, monitor.spec.port) == ("shop.example.com", 443)
    status = monitor.status
    assert status is not None
    assert (status.state, status.observed_generation, status.consecutive_failures) == (
        MonitorState.DOWN,
        3,
        4,
    )
    assert [(e.name, e.state, e.runner) for e in status.locations] == [
        ("eu-west", MonitorState.DOWN, "runner-1")
    ]


def test_a_new_object_has_no_status() -> None:
    assert parse_monitor(watched(status=None)).status is None


def test_status_fields_of_another_operator_version_are_ignored_not_fatal() -> None:
    status = {**WATCHED["status"], "fieldFromANewerVersion": {"x": 1}}
    monitor = parse_monitor(watched(status=status))
    assert monitor.status is not None and monitor.status.state == MonitorState.DOWN


@pytest.mark.parametrize(
    "status",
    [
        {"state": "Sideways"},
        {"consecutiveFailures": -1},
        {"lastProbeTime": "yesterday"},
        "not an object",
    ],
    ids=["unknown-state", "negative-count", "bad-time", "not-an-object"],
)
def test_an_unreadable_status_is_dropped_and_the_spec_still_applies(status: Any) -> None:
    monitor = parse_monitor(watched(status=status))
    assert monitor.status is None
    assert (monitor.key, monitor.spec.port) == (("web", "shop"), 443)


def test_an_invalid_spec_raises_with_the_field_at_fault() -> None:
    spec = {**WATCHED["spec"], "port": 70000}
    assert errors_of(watched(spec=spec)) == [(("spec", "port"), "less_than_equal")]


def test_an_invalid_spec_raises_even_when_the_status_is_unreadable_too() -> None:
    """The retry without status must not hide the spec's problem (nor report the status's)."""
    spec = {**WATCHED["spec"], "port": 0}
    assert errors_of(watched(spec=spec, status={"state": "Sideways"})) == [
        (("spec", "port"), "greater_than_equal")
    ]


def test_an_unknown_spec_field_is_refused_like_the_api_servers_schema_would() -> None:
    spec = {**WATCHED["spec"], "hostname": "typo.example.com"}
    assert errors_of(watched(spec=spec)) == [(("spec", "hostname"), "extra_forbidden")]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"spec": None}, (("spec",), "model_type")),
        ({"spec": {"port": 443}}, (("spec", "host"), "missing")),
        ({"metadata": {"namespace": "web"}}, (("metadata", "name"), "missing")),
        ({"kind": "Deployment"}, (("kind",), "literal_error")),
        ({"apiVersion": "tcpmonitor.dev/v1"}, (("apiVersion",), "literal_error")),
    ],
    ids=["no-spec", "no-host", "no-name", "wrong-kind", "wrong-version"],
)
def test_a_missing_or_foreign_part_raises(
    changes: dict[str, Any], error: tuple[tuple[str, ...], str]
) -> None:
    assert error in errors_of(watched(**changes))


def test_a_stored_pattern_re2_refuses_is_read_for_the_runtime_to_report() -> None:
    # Stored before the RE2 rule (a lookahead Python's re accepted): the API server still
    # serves it, so the operator must read it and report it on the monitor, not drop it.
    lookahead = {"source": "ResponseData", "comparison": "Matches", "target": "(?=x)"}
    spec = WATCHED["spec"] | {"assertions": [lookahead]}
    monitor = parse_monitor(watched(spec=spec))
    with pytest.raises(PlanError) as refused:
        compile_plan(monitor.spec, ProbeMaterial())
    assert (refused.value.reason, refused.value.field) == (
        "InvalidSpec",
        "spec.assertions[0].target",
    )
    with pytest.raises(ValidationError):  # a new object with it is refused, as by the API server
        TcpMonitor.model_validate(watched(spec=spec))
