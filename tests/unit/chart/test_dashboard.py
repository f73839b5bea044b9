"""The Grafana dashboard: queries that parse and use exported series, its ConfigMap, layout."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser

from .rendering import CHART, exported_series, metric_names, monitoring, objects, render

DASHBOARD = CHART / "dashboards" / "tcpmonitor-operator.json"


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            exprs.append(re.fullmatch(r"label_values\((.*), \w+\)", query).group(1))  # type: ignore[union-attr]
    return exprs


def as_promql(expr: str) -> str:
    """Grafana's variables replaced by values PromQL accepts."""
    return expr.replace("$__rate_interval", "5m").replace("$", "")


def test_dashboard_queries_parse_and_use_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs(dashboard)
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        promql_parser.parse(as_promql(expr))
        used |= metric_names(expr)
    assert used <= exported_series()
    # State per monitor, latency per phase, certificate expiry, operator health.
    assert {
        "tcpmonitor_state",
        "tcpmonitor_probe_phase_duration_seconds",
        "tcpmonitor_tls_certificate_expiry_timestamp_seconds",
        "tcpmonitor_tls_chain_expiry_timestamp_seconds",
        "tcpmonitor_monitors_scheduled",
        "tcpmonitor_schedule_lag_seconds_bucket",
        "tcpmonitor_status_patches_total",
    } <= used
    assert any(e.startswith("up{") for e in exprs)
    # The monitors' state is the operator's or the controller's aggregate (no location label);
    # the per-location views are shown apart.
    states = [e for e in exprs if "tcpmonitor_state{" in e]
    assert states
    for expr in states:
        selectors = re.findall(r"tcpmonitor_state\{([^}]*)\}", expr)
        assert all('location=""' in s or 'location!=""' in s for s in selectors), expr
    assert any('location!=""' in e for e in states)
    assert any("by (location)" in e and e.startswith("count") and "up{" in e for e in exprs)
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_config_map_holds_the_dashboard() -> None:
    manifests = monitoring()
    (config_map,) = objects(manifests, "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = config_map["data"].values()
    assert json.loads(content) == json.loads(DASHBOARD.read_text())
    assert not objects(render(), "ConfigMap")


def test_dashboard_panels_do_not_overlap() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[x, y] = panel["title"]
