"""values.yaml and values.schema.json: every value described, bad values refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .rendering import CHART, CRD_KINDS, refused, render


def undescribed(
    value: Any, node: dict[str, Any], definitions: dict[str, Any], path: str = ""
) -> Iterator[str]:
    """Paths in values.yaml that the schema does not describe.

    Objects with ``properties`` must list every key and describe each; maps and free-form
    Kubernetes objects (labels, resources, securityContext) are described as a whole.
    """
    if "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[1]] | node
    if not node.get("description") and path:
        yield path
    properties = node.get("properties")
    if properties is None:
        return
    assert node.get("additionalProperties") is False, f"{path or '(root)'} accepts typos"
    for key, child in value.items():
        if key not in properties:
            yield f"{path}.{key}".lstrip(".") + " (not in the schema)"
        else:
            yield from undescribed(child, properties[key], definitions, f"{path}.{key}".lstrip("."))


def test_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(undescribed(values, schema, schema["definitions"])) == []
    # ... and describes nothing that values.yaml lacks.
    assert schema["properties"].keys() == values.keys()


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("watchNamspaces={a}", "Additional property watchNamspaces is not allowed"),
        ("logLevel=verbose", "logLevel"),
        ("logFormat=xml", "logFormat"),
        ("operator.heartbeat=1 minute", "operator.heartbeat"),
        ("metrics.prometheusRule.down.for=5 minutes", "metrics.prometheusRule.down.for"),
        ("metrics.serviceMonitor.intervall=1m", "Additional property intervall"),
        ("image.pullPolicy=Sometimes", "image.pullPolicy"),
        ("image.digest=latest", "image.digest"),
        ("watchNamespaces={Team_A}", "watchNamespaces.0"),
        ("mode=controller", "mode"),
        ("leaseDuration=15", "leaseDuration"),
        ("controller.replicas=-1", "controller.replicas"),
        ("runner.writeBudget=0", "runner.writeBudget"),
        ("locations[0].name=EU_West", "locations.0.name"),
        ("locations[0].replica=2", "Additional property replica is not allowed"),
        ("remoteLocations[0].name=a.b", "remoteLocations.0.name"),
        ("metrics.prometheusRule.runnersDown.for=soon", "metrics.prometheusRule.runnersDown.for"),
    ],
)
def test_schema_rejects_bad_values(setting: str, complaint: str) -> None:
    error = refused("--set", setting)
    assert "values don't meet the specifications of the schema" in error
    assert complaint in error


def test_schema_requires_a_location_name_and_replicas() -> None:
    assert "replicas" in refused("--set-json", 'locations=[{"name": "eu"}]')
    assert "name" in refused("--set-json", 'locations=[{"replicas": 1}]')


def test_optional_parts_are_switched_by_values_not_capabilities() -> None:
    for template in (CHART / "templates").iterdir():
        assert ".Capabilities" not in template.read_text(), template.name
    plain = render()
    with_apis = render("--api-versions", "monitoring.coreos.com/v1")
    assert plain == with_apis
    assert {m["kind"] for m in plain}.isdisjoint(CRD_KINDS)
