"""A real Prometheus scrapes a running operator: the chart's alert fires and resolves, and every
query of the chart's dashboard returns data.

Two deployments, as the chart makes them: mode distributed (its default: a controller and one
runner in the location ``default``) and mode all-in-one (one operator process). Prometheus (the
Debian package's binary, .ci/provision-monitoring) runs with a config this test writes: one
scrape job named like the chart's metrics Service, every second, with ``honor_labels`` and the
target labels the chart's ServiceMonitor gives (the release namespace, the pod, and ``location``
for a runner), and as its rule file the chart's PrometheusRule for that mode, rendered with
``down.for`` shortened through the chart's own value.

In all-in-one mode the three location panels are empty by design: there are no runners, so no
series carries ``location`` (the test checks that exactly those three are empty).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests.controlplane import Cluster
from tests.e2e.conftest import unavailable
from tests.unit.chart.rendering import CHART, METRICS_SERVICE, prometheus_rules, render
from tests.unit.chart.rendering import NAMESPACE as RELEASE_NAMESPACE

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    eventually,
    free_port,
    state_is,
    status,
    tcpmonitor,
)
from .test_runners import Fleet, TlsListener

DOWN_FOR = "3s"
DASHBOARD = CHART / "dashboards" / "tcpmonitor-operator.json"
# Grafana's $__rate_interval is at least four scrape intervals; a minute covers the test's
# whole history at one scrape a second.
RATE_INTERVAL = "1m"


class PrometheusServer:
    """``prometheus`` in a subprocess on a free loopback port, its TSDB and log in tmp."""

    def __init__(self, binary: str, directory: Path, config: dict[str, Any]) -> None:
        directory.mkdir()
        config_path = directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.log_path = directory / "prometheus.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            eventually(self.ready, 30, 0.2, message="prometheus /-/ready")
        except BaseException:
            self.stop()
            raise

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
            return json.loads(answer.read())

    def ready(self) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alerts(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        """The active alerts (pending or firing) called ``alertname`` with these labels."""
        found: list[dict[str, Any]] = self._get("/api/v1/alerts")["data"]["alerts"]
        return [
            a
            for a in found
            if a["labels"]["alertname"] == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def targets_up(self, count: int) -> bool:
        active = self._get("/api/v1/targets")["data"]["activeTargets"]
        return len(active) == count and all(t["health"] == "up" for t in active)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        unavailable("prometheus not found; `.ci/provision-monitoring` installs it (as root)")
    return found


# Each process's own target labels (beside the release namespace), as the ServiceMonitor's
# relabeling gives them: only a runner's carry `location`.
CONTROLLER_LABELS = {"pod": "tcpm-tcpmonitor-operator-controller-0"}
RUNNER_LABELS = {"pod": "tcpm-tcpmonitor-operator-runner-default-0", "location": "default"}
OPERATOR_LABELS = {"pod": "tcpm-tcpmonitor-operator-0"}
LOCATION_PANELS = {
    "panel 'State per location' A",
    "panel 'Runners per location' A",
    "panel 'Monitors per location' A",
}


def scrape_config(targets: list[tuple[int, dict[str, str]]]) -> dict[str, Any]:
    """What the chart's ServiceMonitor makes of the release's pods: (metrics port, labels)."""
    return {
        "job_name": METRICS_SERVICE,
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "honor_labels": True,
        "static_configs": [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {"namespace": RELEASE_NAMESPACE} | labels,
            }
            for port, labels in targets
        ],
    }


def start_release(
    mode: str, cluster: Cluster, namespace: str, tmp_path: Path, cleanup: contextlib.ExitStack
) -> list[tuple[int, dict[str, str]]]:
    """The mode's processes, stopped by ``cleanup``; their scrape targets."""
    if mode == "all-in-one":
        operator = OperatorProcess(cluster, tmp_path, "--namespace", namespace)
        cleanup.callback(operator.stop)
        return [(operator.metrics_port, OPERATOR_LABELS)]
    fleet = Fleet(cluster, namespace, tmp_path)
    cleanup.callback(fleet.stop)
    controller = fleet.controller("controller-a")
    runner = fleet.runner("default", "runner-a")
    return [(controller.metrics_port, CONTROLLER_LABELS), (runner.metrics_port, RUNNER_LABELS)]


def dashboard_queries(namespace: str) -> dict[str, str]:
    """Every query of the dashboard by where it sits (panel title and refId, or variable),
    with Grafana's variables as a user picking this test's job, namespace and monitors sets
    them."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.*), \w+\)", variable["query"]["query"])
            assert match, variable
            queries[f"variable ${variable['name']}"] = match.group(1)
    values = {
        "$__rate_interval": RATE_INTERVAL,
        "$job": METRICS_SERVICE,
        "$namespace": namespace,
        "$monitor": "closed|tls",
    }
    substituted = {}
    for key, expr in queries.items():
        text = expr
        for variable, value in values.items():
            text = text.replace(variable, value)
        assert "$" not in text, text
        substituted[key] = text
    return substituted


@pytest.mark.parametrize("mode", ["distributed", "all-in-one"])
def test_down_alert_fires_and_resolves_and_every_dashboard_query_returns_data(
    control_plane: Cluster, namespace: str, tmp_path: Path, prometheus_binary: str, mode: str
) -> None:
    rules = prometheus_rules(
        render(
            "--set",
            f"mode={mode}",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            f"metrics.prometheusRule.down.for={DOWN_FOR}",
        )
    )
    (down,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == "TcpMonitorDown"]
    assert down["for"] == DOWN_FOR
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules))

    ca = trustme.CA()
    closed = Listener()  # its port is free and nothing listens on it until start()
    with contextlib.ExitStack() as cleanup:
        tls_target = TlsListener(ca)
        cleanup.callback(tls_target.stop)
        cleanup.callback(closed.stop)
        targets = start_release(mode, control_plane, namespace, tmp_path, cleanup)
        server = PrometheusServer(
            prometheus_binary,
            tmp_path / "prometheus",
            {
                "global": {"evaluation_interval": "1s"},
                "rule_files": [str(rules_path)],
                "scrape_configs": [scrape_config(targets)],
            },
        )
        cleanup.callback(server.stop)
        apply(
            control_plane,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ca", "namespace": namespace},
                "data": {"ca.crt": ca.cert_pem.bytes().decode()},
            },
            tcpmonitor(namespace, "closed", port=closed.port),
            tcpmonitor(
                namespace,
                "tls",
                port=tls_target.port,
                send="PING\r\n",
                tls={"enabled": True, "caConfigMapRef": {"name": "ca", "key": "ca.crt"}},
            ),
        )
        eventually(
            lambda: server.targets_up(len(targets)), 20, 0.5, message="every target scraped, up"
        )
        eventually(lambda: state_is(control_plane, namespace, "tls", "Up"), 30, message="tls is Up")

        firing = eventually(
            lambda: [
                a
                for a in server.alerts("TcpMonitorDown", namespace=namespace, name="closed")
                if a["state"] == "firing"
            ],
            60,
            0.5,
            message="TcpMonitorDown firing for the closed port",
        )
        assert firing[0]["annotations"]["summary"] == f"TcpMonitor {namespace}/closed is Down"
        assert not server.alerts("TcpMonitorDown", name="tls")
        assert not server.alerts("TcpMonitorOperatorDown")
        assert not server.alerts("TcpMonitorRunnersDown")

        queries = dashboard_queries(namespace)
        expected_empty = LOCATION_PANELS if mode == "all-in-one" else set()
        assert expected_empty <= queries.keys()
        results: dict[str, list[dict[str, Any]]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            results = {key: server.query(expr) for key, expr in queries.items()}
            if all(result for key, result in results.items() if key not in expected_empty):
                break
            time.sleep(1)
        empty = {key for key, result in results.items() if not result}
        assert empty == expected_empty, (
            f"{len(empty)} of {len(queries)} dashboard queries without data: {sorted(empty)}"
        )

        def value(key: str) -> float:
            (sample,) = results[key]
            return float(sample["value"][1])

        # Not only data, the right data: one monitor Down of two, one runner in its location,
        # the certificate's expiry as the monitor's status reports it.
        assert value("panel 'Down' A") == 1
        assert value("panel 'All monitors' A") == 2
        certificate = status(control_plane, namespace, "tls")["lastResult"]["tls"]["certificate"]
        not_after = datetime.fromisoformat(certificate["notAfter"].replace("Z", "+00:00"))
        expires_in = not_after.timestamp() - time.time()
        assert abs(value("panel 'Certificate expiry' A") - expires_in) < 60
        if mode == "distributed":
            assert value("panel 'Runners per location' A") == 1
            per_location = results["panel 'State per location' A"]
            assert {s["metric"]["location"] for s in per_location} == {"default"}

        closed.start()
        eventually(
            lambda: not server.alerts("TcpMonitorDown", namespace=namespace, name="closed"),
            60,
            0.5,
            message="TcpMonitorDown resolved once the port is open",
        )
        assert state_is(control_plane, namespace, "closed", "Up")
