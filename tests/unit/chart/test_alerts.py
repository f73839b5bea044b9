"""The PrometheusRule: alerts that parse, use exported series, and follow the values."""

from __future__ import annotations

import re

import promql_parser
import pytest

from .rendering import (
    FULLNAME,
    METRICS_SERVICE,
    NAMESPACE,
    RENDERINGS,
    Manifest,
    ci,
    exported_series,
    metric_names,
    monitoring,
    objects,
    render,
)


def all_alert_rules(manifests: tuple[Manifest, ...]) -> list[Manifest]:
    (rule,) = objects(manifests, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def alert_rules(manifests: tuple[Manifest, ...]) -> dict[str, Manifest]:
    """Alerts by name; TcpMonitorRunnersDown (one rule per location) is left out."""
    return {r["alert"]: r for r in all_alert_rules(manifests) if r["alert"] != RUNNERS_DOWN}


RUNNERS_DOWN = "TcpMonitorRunnersDown"
TARGET_ALERTS = {"TcpMonitorDown", "TcpMonitorDegraded", "TcpMonitorCertificateExpiringSoon"}
PROCESS_ALERTS = {
    "TcpMonitorScheduleLagHigh",
    "TcpMonitorStatusWritesFailing",
    "TcpMonitorApiNotReady",
    "TcpMonitorStatusStale",
    "TcpMonitorApiThrottled",
    "TcpMonitorWatchRestarting",
}


def runners_down(manifests: tuple[Manifest, ...]) -> dict[str, Manifest]:
    return {
        r["labels"]["location"]: r for r in all_alert_rules(manifests) if r["alert"] == RUNNERS_DOWN
    }


@pytest.mark.parametrize(
    "rendering", ["monitoring-values.yaml", "multi-location-values.yaml", "all-in-one-values.yaml"]
)
def test_prometheus_rule_alerts_parse_and_use_exported_metrics(rendering: str) -> None:
    for rule in all_alert_rules(render(*RENDERINGS[rendering])):
        name = rule["alert"]
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        promql_parser.parse(rule["expr"])  # raises on a syntax error
        assert metric_names(rule["expr"]) <= exported_series(), name
        assert f'job="{METRICS_SERVICE}"' in rule["expr"], name
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert {"summary", "description"} <= rule["annotations"].keys()


def test_prometheus_rule_alerts() -> None:
    manifests = monitoring()
    rules = alert_rules(manifests)
    assert set(rules) == TARGET_ALERTS | PROCESS_ALERTS | {"TcpMonitorOperatorDown"}
    for rule in all_alert_rules(manifests):
        assert rule["labels"]["team"] == "platform"
    assert rules["TcpMonitorDown"]["for"] == "5m"
    assert "< 21 * 86400" in rules["TcpMonitorCertificateExpiringSoon"]["expr"]
    # The earliest expiry of the whole chain, the leaf's where no chain is reported; quiet for
    # a monitor in a maintenance window.
    assert metric_names(rules["TcpMonitorCertificateExpiringSoon"]["expr"]) == {
        "tcpmonitor_tls_chain_expiry_timestamp_seconds",
        "tcpmonitor_tls_certificate_expiry_timestamp_seconds",
        "tcpmonitor_state",
    }
    assert (
        "unless on (namespace, name) max by (namespace, name) (tcpmonitor_state{"
        in (rules["TcpMonitorCertificateExpiringSoon"]["expr"])
    )
    assert 'state="Maintenance"}) == 1' in rules["TcpMonitorCertificateExpiringSoon"]["expr"]
    assert rules["TcpMonitorCertificateExpiringSoon"]["for"] == "1h"
    # The monitor's state is the controller's aggregate (no location label), never a runner's
    # view of one location: with minFailedLocations 2, one location Down is not the monitor Down.
    for name in ("TcpMonitorDown", "TcpMonitorDegraded"):
        assert 'location=""' in rules[name]["expr"], name
    assert 'state="Down"' in rules["TcpMonitorDown"]["expr"]
    # No controller replica scraped (the controller's pods have no location label).
    assert rules["TcpMonitorOperatorDown"]["expr"] == (
        f'absent(up{{job="{METRICS_SERVICE}", namespace="{NAMESPACE}", location=""}} == 1)'
    )
    assert "controller" in rules["TcpMonitorOperatorDown"]["annotations"]["description"]
    # Lag and write failures per location (and the controller's own, without one).
    for name in PROCESS_ALERTS:
        assert re.search(r"by \(namespace, job, location(, le|, pod)?\)", rules[name]["expr"]), name
    # Prometheus, not Helm, expands these.
    assert "{{ $labels.name }}" in rules["TcpMonitorDown"]["annotations"]["summary"]
    assert "{{ $labels.location }}" in rules["TcpMonitorScheduleLagHigh"]["annotations"]["summary"]


def test_runners_down_is_one_alert_per_location_with_runners_here() -> None:
    assert runners_down(monitoring()).keys() == {"default"}
    multi = runners_down(ci("multi-location"))
    # ap-south has no replicas; remote locations are scraped by their own cluster's Prometheus.
    assert multi.keys() == {"eu-west", "us-east"}
    for location, rule in multi.items():
        assert rule["expr"] == (
            f'absent(up{{job="{METRICS_SERVICE}", namespace="{NAMESPACE}", '
            f'location="{location}"}} == 1)'
        )
        assert rule["labels"]["namespace"] == NAMESPACE
        assert f"deploy/{FULLNAME}-runner-{location}" in rule["annotations"]["description"]


def test_all_in_one_alerts_are_the_operators() -> None:
    manifests = ci("all-in-one")
    assert not runners_down(manifests)
    rules = alert_rules(manifests)
    assert set(rules) == TARGET_ALERTS | PROCESS_ALERTS | {"TcpMonitorOperatorDown"}
    description = rules["TcpMonitorOperatorDown"]["annotations"]["description"]
    assert "no TcpMonitor is being probed" in description
    assert f"logs deploy/{FULLNAME}`" in description


def test_remote_runners_alert_on_their_own_processes_only() -> None:
    """The monitors' state and certificates are the home cluster's to alert on."""
    manifests = ci("remote-runners")
    assert set(alert_rules(manifests)) == PROCESS_ALERTS
    assert runners_down(manifests).keys() == {"on-premises"}


def test_alerts_follow_their_values() -> None:
    custom = render(
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.down.for=12m",
        "--set",
        "metrics.prometheusRule.degraded.enabled=false",
        "--set-json",
        "metrics.prometheusRule.scheduleLag.seconds=2.5",
        "--set",
        "metrics.prometheusRule.operatorJob=kubernetes-pods",
    )
    rules = alert_rules(custom)
    assert "TcpMonitorDegraded" not in rules
    assert rules["TcpMonitorDown"]["for"] == "12m"
    assert rules["TcpMonitorScheduleLagHigh"]["expr"].endswith("> 2.5")
    assert all('job="kubernetes-pods"' in r["expr"] for r in all_alert_rules(custom))
    no_runner_alerts = render(
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.runnersDown.enabled=false",
    )
    assert not runners_down(no_runner_alerts)
