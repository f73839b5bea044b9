"""The CustomResourceDefinition, generated from the pydantic models (one source of truth).

Pydantic emits JSON Schema with ``$ref``s, ``anyOf`` for optionals and ``title``s; the API
server wants a structural OpenAPI v3 schema: everything inlined, ``nullable`` instead of a null
branch, and no keywords it does not know. This module does that translation and nothing else.
"""

from __future__ import annotations

from typing import Any

import yaml

from .. import GROUP, KIND, PLURAL, VERSION
from .policy import POLICY_KIND, POLICY_PLURAL, TcpMonitorPolicySpec
from .spec import TcpMonitorSpec
from .status import TcpMonitorStatus

CRD_NAME = f"{PLURAL}.{GROUP}"
POLICY_CRD_NAME = f"{POLICY_PLURAL}.{GROUP}"
POLICY_SHORT_NAMES = ["tcpmp"]
SHORT_NAMES = ["tcpm"]
CATEGORIES = ["monitoring"]

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "pattern",
    "required",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Host", "type": "string", "jsonPath": ".spec.host"},
    {"name": "Port", "type": "integer", "jsonPath": ".spec.port"},
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Latency", "type": "string", "jsonPath": ".status.latency"},
    {"name": "Last Probe", "type": "date", "jsonPath": ".status.lastProbeTime"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
    {
        # A string, not a date: kubectl renders future dates as "<invalid>".
        "name": "Certificate Expiry",
        "type": "string",
        "jsonPath": ".status.lastResult.tls.certificate.notAfter",
        "priority": 1,
    },
    {
        # The first certificate of the chain to expire: an intermediate may go before the leaf.
        "name": "Chain Expiry",
        "type": "string",
        "jsonPath": ".status.lastResult.tls.chainExpiry",
        "priority": 1,
    },
]


def _structural(node: dict[str, Any], defs: dict[str, Any], nullable: bool) -> dict[str, Any]:
    """Inline refs and rewrite one pydantic schema node into the structural dialect.

    ``nullable`` decides what an optional field becomes: in status we write explicit nulls
    (a phase not performed), in spec an optional field is simply absent.
    """
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs, nullable)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        has_null = len(branches) < len(node["anyOf"])
        if len(branches) != 1:
            raise ValueError(f"cannot express union in a structural schema: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        inner = _structural({**branches[0], **rest}, defs, nullable)
        if nullable and has_null:
            inner["nullable"] = True
        return inner
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out["properties"] = {name: _structural(v, defs, nullable) for name, v in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs, nullable)
        elif key == "additionalProperties" and isinstance(value, dict):
            # A map (label selectors): without it the API server prunes every key.
            out["additionalProperties"] = _structural(value, defs, nullable)
        elif key == "const":
            out["enum"] = [value]
        elif key in _KEEP:
            out[key] = value
    if out.get("type") == "array" and "maxItems" not in out:
        raise ValueError(f"unbounded list in the API: {node.get('description')}")
    if out.get("default") in (None, []):
        # Nothing to default: storing ``assertions: []`` on every object is only noise.
        out.pop("default", None)
    if out.get("type") == "string" and "maxLength" not in out and "enum" not in out:
        if out.get("format") == "date-time":
            out["maxLength"] = 64
        else:
            raise ValueError(f"unbounded string in the API: {node.get('description')}")
    return out


def structural_schema(model: type[Any], *, nullable: bool) -> dict[str, Any]:
    """The structural schema of a pydantic model, wire names and defaults included."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _structural(schema, defs, nullable)


def _resource_schema() -> dict[str, Any]:
    spec = structural_schema(TcpMonitorSpec, nullable=False)
    spec["description"] = "What to probe, how often, and what counts as working."
    status = structural_schema(TcpMonitorStatus, nullable=True)
    status["description"] = "Observed state, written by the operator only."
    return {
        "type": "object",
        "description": "A TCP monitor: connect to host:port on an interval, optionally send a "
        "payload and check the reply and the TLS certificate.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "tcpmonitor.dev/v1alpha1"},
            "kind": {"type": "string", "description": "TcpMonitor"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def build_crd() -> dict[str, Any]:
    """The complete apiextensions.k8s.io/v1 CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "tcpmonitor-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": _resource_schema()},
                }
            ],
        },
    }


POLICY_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Default", "type": "string", "jsonPath": ".spec.defaultAction"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_policy_crd() -> dict[str, Any]:
    """The cluster-scoped TcpMonitorPolicy CRD: what namespaces may probe (platform teams)."""
    spec = structural_schema(TcpMonitorPolicySpec, nullable=False)
    spec["description"] = "Which targets the covered namespaces may probe, and their limits."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": POLICY_CRD_NAME,
            "labels": {"app.kubernetes.io/name": "tcpmonitor-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": POLICY_KIND,
                "listKind": f"{POLICY_KIND}List",
                "plural": POLICY_PLURAL,
                "singular": POLICY_KIND.lower(),
                # No category: `kubectl get monitoring -n NS` lists a namespace's monitors,
                # and a cluster-scoped policy among them would only confuse.
                "shortNames": POLICY_SHORT_NAMES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": POLICY_PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A target policy for TcpMonitors, owned by the "
                            "platform team: which destinations the namespaces it selects may "
                            "probe, whether replies may be recorded, and fairness limits.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                            },
                        }
                    },
                }
            ],
        },
    }


def _render(crd: dict[str, Any], command: str) -> str:
    header = f"# Generated by `{command}` from operator/tcpmonitor/api; do not edit.\n"
    return header + yaml.dump(crd, Dumper=_NoAliasDumper, sort_keys=False, width=100)


def render_crd_yaml() -> str:
    """The CRD as committed in crds/; stable key order so the drift test compares text."""
    return _render(build_crd(), "tcpmonitor crd")


def render_policy_crd_yaml() -> str:
    return _render(build_policy_crd(), "tcpmonitor crd --policy")


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated sub-schemas must be written out, not as YAML anchors a reader has to chase."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
