"""The PrometheusRule's alerts evaluated by Prometheus's own engine: ``promtool test rules``.

The unit tests are tests/unit/chart/promtool/*.yaml (input series, evaluation times, the alerts
expected); they run against the chart rendered with ci/multi-location-values.yaml and
ci/monitoring-values.yaml, written as the plain rule file prometheus-operator gives Prometheus
(the PrometheusRule's ``spec``). Each alert keeps its ``summary``, which promtool expands and
compares; the long ``description`` is left out of the copy (test_alerts.py checks it).

promtool comes with the Debian package ``prometheus`` (.ci/provision-monitoring); without it
these tests skip, except the coverage check, which needs only Python.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .rendering import ALERTING_VALUES, RENDERINGS, objects, prometheus_rules, render

PROMTOOL_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.yaml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not found; `.ci/provision-monitoring` installs it (prometheus)")
    return found


def rules_under_test() -> dict[str, Any]:
    rules = prometheus_rules(render(*ALERTING_VALUES))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    return rules


def rendered_alerts() -> set[str]:
    return {r["alert"] for g in rules_under_test()["groups"] for r in g["rules"]}


def promtool_cases() -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` entry of the promtool files."""
    cases = []
    for path in PROMTOOL_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases += test["alert_rule_test"]
    return cases


def test_every_alert_has_promtool_tests_that_fire_and_that_do_not() -> None:
    cases = promtool_cases()
    fires = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    alerts = rendered_alerts()
    assert len(alerts) == 11, alerts
    assert fires == alerts, "alerts without a firing case, or cases of unknown alerts"
    assert alerts <= silent, f"alerts without a non-firing case: {alerts - silent}"


def test_alerts_behave_as_their_promtool_tests_say(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules_under_test()))
    for path in PROMTOOL_TESTS:
        shutil.copy(path, tmp_path / path.name)
    result = subprocess.run(
        [promtool, "test", "rules", *(p.name for p in PROMTOOL_TESTS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(PROMTOOL_TESTS), result.stdout


def test_every_rendering_of_the_rules_loads_in_prometheus(promtool: str, tmp_path: Path) -> None:
    checked = []
    for rendering, options in sorted(RENDERINGS.items()):
        manifests = render(*options)
        if not objects(manifests, "PrometheusRule"):
            continue
        path = tmp_path / f"{rendering}.rules.yaml"
        path.write_text(yaml.safe_dump(prometheus_rules(manifests)))
        checked.append(path)
    assert len(checked) >= 4, checked
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, checked)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
