"""The CRD is generated from the models; the committed file must not drift from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tcpmonitor.api.crd import build_crd, render_crd_yaml
from tcpmonitor.api.reference_tables import render_into

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "crds" / "tcpmonitors.tcpmonitor.dev.yaml"


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if "items" in schema:
        out += _walk(schema["items"], f"{path}[]")
    return out


def _schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == render_crd_yaml(), (
        "crds/ drifted from the models: run `tcpmonitor crd > crds/tcpmonitors.tcpmonitor.dev.yaml`"
    )


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    missing = [
        p for p, s in _walk(_schema()) if p and p != ".metadata" and not s.get("description")
    ]
    assert missing == []


def test_every_string_and_list_is_bounded() -> None:
    for path, s in _walk(_schema()):
        if path in (".apiVersion", ".kind"):
            continue
        if s.get("type") == "string":
            assert "maxLength" in s or "enum" in s, path
        if s.get("type") == "array":
            assert "maxItems" in s, path


def test_schema_is_structural() -> None:
    for path, s in _walk(_schema()):
        assert "type" in s, path
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title"} & set(s), path


def test_spec_has_defaults_and_cel_rules_with_message_expressions() -> None:
    spec = _schema()["properties"]["spec"]
    assert spec["required"] == ["host", "port"]
    props = spec["properties"]
    assert props["interval"]["default"] == "60s"
    assert props["timeout"]["default"] == "10s"
    assert props["ipFamily"]["default"] == "Any"
    assert props["tls"]["properties"]["minVersion"]["default"] == "TLS1.2"
    assert props["tls"]["properties"]["expiryWarning"]["default"] == "14d"
    rules = spec["x-kubernetes-validations"]
    assert len(rules) == 16
    assert props["expect"]["default"] == "Reachable"
    assert props["tls"]["properties"]["startTLS"]["default"] is False
    assert all(r["messageExpression"] for r in rules)


def test_the_regex_rule_passes_unchanged_assertions_so_old_objects_take_updates() -> None:
    # A regex CEL cannot compile is an evaluation error, which the API server never ratchets;
    # without the oldSelf comparison a stored object with such a regex could take no status.
    (rule,) = [
        r
        for r in _schema()["properties"]["spec"]["x-kubernetes-validations"]
        if ".matches(a.target)" in r["rule"]
    ]
    assert rule["optionalOldSelf"] is True
    assert "oldSelf.value().assertions == self.assertions" in rule["rule"]
    assert rule["message"] == "a Matches or NotMatches target is not a valid RE2 regular expression"


def test_names_columns_and_subresources() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "TcpMonitor",
        "tcpmonitors",
        ["tcpm"],
        ["monitoring"],
    )
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"], c.get("priority", 0)) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Host", 0),
        ("Port", 0),
        ("State", 0),
        ("Latency", 0),
        ("Last Probe", 0),
        ("Age", 0),
        ("Message", 1),
        ("Certificate Expiry", 1),
        ("Chain Expiry", 1),
    ]


def test_crd_yaml_has_no_anchors() -> None:
    text = render_crd_yaml()
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == build_crd()


def test_readme_reference_matches_the_models() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme == render_into(readme), (
        "README reference drifted: run `python -m tcpmonitor.api.reference_tables README.md`"
    )
