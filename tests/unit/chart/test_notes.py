"""NOTES.txt, as `helm install` prints it, in each mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from .rendering import (
    CHART,
    CONTROLLER,
    FULLNAME,
    METRICS_SERVICE,
    NAMESPACE,
    RELEASE,
    Manifest,
    assert_valid_tcpmonitors,
    helm,
    values_file,
)


def render_notes(tmp_path: Path, *options: str) -> str:
    """NOTES.txt as `helm install` prints it.

    `helm template` skips NOTES.txt, so render a copy of the chart in which the notes are a
    named template, included into a ConfigMap.
    """
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    notes = copy / "templates" / "NOTES.txt"
    define = '{{- define "test.notes" -}}\n' + notes.read_text() + "\n{{- end }}\n"
    (copy / "templates" / "_test_notes.tpl").write_text(define)
    notes.unlink()
    (copy / "templates" / "test-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ include "test.notes" . | toJson }}\n'
    )
    result = helm(
        "template",
        RELEASE,
        str(copy),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/test-notes.yaml",
        *options,
    )
    assert result.returncode == 0, result.stderr
    text: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return text


def notes_monitor(tmp_path: Path, notes: str) -> Manifest:
    """The first monitor the notes suggest, checked to be a valid TcpMonitor."""
    manifest = notes.split("<<'YAML'\n", 1)[1].split("  YAML\n", 1)[0]
    monitor: Manifest = yaml.safe_load(manifest)
    assert monitor["kind"] == "TcpMonitor"
    assert_valid_tcpmonitors(tmp_path, [{**monitor, "metadata": {"name": "x", "namespace": "d"}}])
    return monitor


def test_notes_tell_the_next_commands(tmp_path: Path) -> None:
    notes = render_notes(tmp_path)
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{CONTROLLER}\n" in notes
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}-runner-default" in notes
    assert "kubectl get tcpmonitors --all-namespaces" in notes
    assert "watching TcpMonitors in all namespaces" in notes
    assert "locations with runners in this cluster: default." in notes
    assert f"http://{METRICS_SERVICE}.{NAMESPACE}.svc:8080/metrics" in notes
    assert "locations" not in notes_monitor(tmp_path, notes)["spec"]  # default: [default]


def test_notes_follow_the_values(tmp_path: Path) -> None:
    namespaced = render_notes(tmp_path, *values_file(CHART / "ci" / "namespaced-rbac-values.yaml"))
    assert "watching TcpMonitors in team-a, team-b" in namespaced
    assert "kubectl apply -n team-a" in namespaced
    assert f"edge: ServiceAccount {NAMESPACE}/{FULLNAME}-remote-edge" in namespaced
    no_rbac = render_notes(
        tmp_path / "b", *values_file(CHART / "ci" / "existing-serviceaccount-values.yaml")
    )
    assert "rbac.create is false" in no_rbac
    assert f"ServiceAccount {NAMESPACE}/tcpmonitor-controller (controller)" in no_rbac
    assert f"ServiceAccount {NAMESPACE}/tcpmonitor-runner-default (runners, one per location)" in (
        no_rbac
    )
    assert "get/update/delete\n    the lease tcpmonitor-controller" in no_rbac


def test_notes_per_mode(tmp_path: Path) -> None:
    multi = render_notes(tmp_path / "m", *values_file(CHART / "ci" / "multi-location-values.yaml"))
    for location in ("eu-west", "us-east", "ap-south"):
        assert f"rollout status deployment/{FULLNAME}-runner-{location}" in multi
    # The first monitor is probed where this release has runners (ap-south has none now).
    monitor = notes_monitor(tmp_path / "m", multi)
    assert monitor["spec"]["locations"] == ["eu-west", "us-east"]
    all_in_one = render_notes(tmp_path / "a", *values_file(CHART / "ci" / "all-in-one-values.yaml"))
    assert f"rollout status deployment/{FULLNAME}\n" in all_in_one
    assert "controller" not in all_in_one
    notes_monitor(tmp_path / "a", all_in_one)
    remote = render_notes(tmp_path / "r", *values_file(CHART / "ci" / "remote-runners-values.yaml"))
    assert f"rollout status deployment/{FULLNAME}-runner-on-premises" in remote
    assert "kubectl -n tcpmonitor-system get leases -l tcpmonitor.dev/role=runner" in remote
    assert "TcpMonitor" not in remote.split("1. Wait")[1]  # monitors are made at home
