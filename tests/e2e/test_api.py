"""The TcpMonitor API as the real kube-apiserver serves it: schema, CEL, defaults, columns.

The manifest table in tests/cases drives both this file and the offline validator's tests, so
``tcpmonitor validate`` is shown to accept exactly what the API server accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcpmonitor.standalone.manifests import load_manifests
from tests.cases.manifests import CASES, Case
from tests.controlplane import Cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BASE_SPEC = {"host": "db.example.com", "port": 5432}


def apply(cluster: Cluster, manifest: dict[str, Any], *extra: str) -> Any:
    return cluster.kubectl("apply", "-f", "-", *extra, input=yaml.safe_dump(manifest))


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "tcpmonitor", name, "-n", namespace, "-o", "json", check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_examples_apply_and_reapply_unchanged(control_plane: Cluster) -> None:
    docs = [
        doc
        for path in EXAMPLES.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    monitors = [doc for doc in docs if doc["kind"] == "TcpMonitor"]
    policies = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "TcpMonitorPolicy"]
    assert policies, "the examples show a TcpMonitorPolicy"
    for ns in {doc["metadata"]["namespace"] for doc in monitors}:
        control_plane.kubectl("create", "namespace", ns)  # may exist already
    try:
        first = control_plane.kubectl("apply", "-f", str(EXAMPLES), check=True).stdout
        assert first.count("tcpmonitor.tcpmonitor.dev/") == len(monitors), first
        assert first.count("tcpmonitorpolicy.tcpmonitor.dev/") == len(policies), first
        again = control_plane.kubectl("apply", "-f", str(EXAMPLES), check=True).stdout
        lines = again.strip().splitlines()
        assert len(lines) == len(docs), again
        assert all(line.endswith(" unchanged") for line in lines), again
    finally:
        # Cluster-scoped: it would govern the targets of every later test.
        control_plane.kubectl("delete", "tcpmonitorpolicy", *policies, "--ignore-not-found")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_api_server_and_validator_agree(
    control_plane: Cluster, namespace: str, case: Case, tmp_path: Path
) -> None:
    manifest = case.manifest(namespace)
    result = apply(control_plane, manifest)
    api_accepts = result.returncode == 0
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(manifest))
    shape = load_manifests([path], deep=False)
    # Same verdict as the API server for everything the API server checks ...
    assert (not shape.problems) == api_accepts, (result.stderr, [str(p) for p in shape.problems])
    assert api_accepts == (case.valid or case.deep), result.stderr
    if not api_accepts:
        # ... naming the same field, with the same message fragment.
        field = case.api_field or case.field
        assert field.removeprefix("spec") in result.stderr, result.stderr
        assert case.message in result.stderr, result.stderr
    # ... and the deep checks refuse exactly the cases marked deep.
    deep = load_manifests([path])
    assert (not deep.problems) == case.valid


def test_defaults_are_stored(control_plane: Cluster, namespace: str) -> None:
    manifest = Case(
        "defaults", {"host": "db.example.com", "port": 5432, "tls": {"enabled": True}}, True
    ).manifest(namespace)
    apply(control_plane, manifest).check_returncode()
    spec = get(control_plane, namespace, "defaults")["spec"]
    assert spec == {
        "host": "db.example.com",
        "port": 5432,
        "interval": "60s",
        "timeout": "10s",
        "ipFamily": "Any",
        "retries": 0,
        "failureThreshold": 1,
        "successThreshold": 1,
        "paused": False,
        "locations": ["default"],
        "minFailedLocations": 1,
        "expect": "Reachable",
        "tls": {
            "enabled": True,
            "insecureSkipVerify": False,
            "minVersion": "TLS1.2",
            "expiryWarning": "14d",
            "startTLS": False,
        },
    }


STATUS = {
    "status": {
        "observedGeneration": 1,
        "state": "Down",
        "latency": "1.2ms",
        "message": "CONNECTION_REFUSED 10.0.0.1:5432: Connection refused",
        "lastProbeTime": "2026-11-21T12:00:00Z",
        "lastResult": {
            "state": "Down",
            "startedAt": "2026-11-21T12:00:00.123Z",
            "remoteAddress": "10.0.0.1:5432",
            "timings": {"dns": None, "connect": 1.2, "tls": None, "data": None, "total": 1.2},
            "error": {"code": "CONNECTION_REFUSED", "message": "Connection refused"},
            "warnings": [],
            "response": None,
            "assertions": [],
            "tls": {
                "version": "TLSv1.3",
                "cipher": "TLS_AES_128_GCM_SHA256",
                "verified": False,
                "verifyError": None,
                "certificate": {
                    "subject": "CN=x",
                    "issuer": "CN=ca",
                    "dnsNames": ["x"],
                    "notBefore": "2026-01-01T00:00:00Z",
                    "notAfter": "2027-01-01T00:00:00Z",
                    "daysRemaining": 40.5,
                    "sha256Fingerprint": "AB:CD",
                },
            },
        },
    }
}


def _patch_status(cluster: Cluster, namespace: str, name: str, body: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch",
        "tcpmonitor",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(body),
        check=True,
    )


def test_printer_columns(control_plane: Cluster, namespace: str) -> None:
    apply(
        control_plane,
        Case("cols", {"host": "db.example.com", "port": 5432}, True).manifest(namespace),
    ).check_returncode()
    _patch_status(control_plane, namespace, "cols", STATUS)
    plain = control_plane.kubectl("get", "tcpmonitors", "-n", namespace, check=True).stdout
    header, row = plain.splitlines()[:2]
    assert header.split() == ["NAME", "HOST", "PORT", "STATE", "LATENCY", "LAST", "PROBE", "AGE"]
    assert row.split()[:5] == ["cols", "db.example.com", "5432", "Down", "1.2ms"]
    wide = control_plane.kubectl("get", "tcpm", "-o", "wide", "-n", namespace, check=True).stdout
    header, row = wide.splitlines()[:2]
    assert header.split()[-6:] == ["AGE", "MESSAGE", "CERTIFICATE", "EXPIRY", "CHAIN", "EXPIRY"]
    # A future date, shown as it is; no chain was reported, so the last column is empty.
    assert row.split()[-1] == "2027-01-01T00:00:00Z"
    assert "CONNECTION_REFUSED 10.0.0.1:5432: Connection refused" in row
    category = control_plane.kubectl("get", "monitoring", "-n", namespace, check=True).stdout
    header, row = category.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "HOST", "PORT", "STATE"]
    assert row.split()[:4] == ["cols", "db.example.com", "5432", "Down"]


def test_explain_shows_field_descriptions(control_plane: Cluster) -> None:
    out = control_plane.kubectl("explain", "tcpmonitor.spec.tls", check=True).stdout
    assert "TLS handshake and certificate checks." in out
    assert "expiryWarning" in out and "insecureSkipVerify" in out
    field = control_plane.kubectl("explain", "tcpmonitor.spec.tls.serverName", check=True).stdout
    assert "Name sent as SNI and checked against the certificate" in field


def test_status_subresource_leaves_generation_spec_change_bumps_it(
    control_plane: Cluster, namespace: str
) -> None:
    manifest = Case("gen", {"host": "db.example.com", "port": 5432}, True).manifest(namespace)
    apply(control_plane, manifest).check_returncode()
    assert get(control_plane, namespace, "gen")["metadata"]["generation"] == 1
    _patch_status(control_plane, namespace, "gen", STATUS)
    stored = get(control_plane, namespace, "gen")
    assert stored["metadata"]["generation"] == 1
    assert stored["status"]["state"] == "Down"
    # status sent through the main resource is ignored
    manifest["status"] = {"state": "Up"}
    manifest["spec"]["port"] = 5433
    apply(control_plane, manifest).check_returncode()
    stored = get(control_plane, namespace, "gen")
    assert stored["metadata"]["generation"] == 2
    assert stored["status"]["state"] == "Down"


def test_a_stored_regex_re2_refuses_still_takes_status_and_other_edits(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    # Store the object under a CRD without the regex rule, as before the rule existed.
    crd_file = ROOT / "crds" / "tcpmonitors.tcpmonitor.dev.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec_schema["x-kubernetes-validations"]
    spec_schema["x-kubernetes-validations"] = [r for r in rules if "matches(a." not in r["rule"]]
    assert len(spec_schema["x-kubernetes-validations"]) == len(rules) - 1
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / crd_file.name).write_text(yaml.safe_dump(crd))
    lookahead = {"source": "ResponseData", "comparison": "Matches", "target": "(?=x)"}
    manifest = Case("legacy", {**BASE_SPEC, "assertions": [lookahead]}, True).manifest(namespace)
    try:
        control_plane.install_crds(tmp_path / "crds")
        apply(control_plane, manifest).check_returncode()
    finally:
        control_plane.install_crds()
    _patch_status(control_plane, namespace, "legacy", STATUS)
    assert get(control_plane, namespace, "legacy")["status"]["state"] == "Down"
    manifest["spec"]["interval"] = "30s"
    apply(control_plane, manifest).check_returncode()
    manifest["spec"]["assertions"] = [{**lookahead, "target": r"(a)\1"}]
    refused = apply(control_plane, manifest)
    assert refused.returncode != 0
    assert "invalid escape sequence" in refused.stderr, refused.stderr
    assert "not a valid RE2 regular expression" in refused.stderr, refused.stderr


def test_explain_documents_the_regex_dialect(control_plane: Cluster) -> None:
    out = control_plane.kubectl("explain", "tcpmonitor.spec.assertions.target", check=True).stdout
    assert "Regular expressions are RE2" in " ".join(out.split())
