"""The CEL half of every cross-field rule against its Python twin, without an API server.

cel-python evaluates the rules on the table's objects, defaulted as the API server defaults
them: a valid object passes every rule, and an object the Python twin refuses is refused by a
CEL rule whose rendered message carries the twin's message. The e2e tests do the same against
a real kube-apiserver; this catches a wrong rule on every unit run. Rules using what
cel-python lacks (Kubernetes' isIP and string extensions, optional oldSelf) are left to the
e2e tests: by their text here, and by the messages they refuse with below.
"""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from pydantic import ValidationError

from tcpmonitor.api import TcpMonitorSpec
from tcpmonitor.api.crd import build_crd

from ...cases.manifests import CASES, Case

_UNSUPPORTED = ("isIP(", "oldSelf", ".substring(")
# What the unsupported rules say (durations are parsed with substring, regexes compiled with an
# oldSelf ratchet, IP literals checked with isIP).
_UNSUPPORTED_MESSAGES = (
    "must be at least",
    "must not exceed interval",
    "must be less than maxResponseTime",
    "is neither a DNS name nor an IP address",
    "not a valid RE2 regular expression",
)


def _spec_schema() -> dict[str, Any]:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root["properties"]["spec"]  # type: ignore[no-any-return]


def _defaulted(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with the schema's defaults filled in, as the API server does before CEL."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = sub["default"]
            if name in out:
                out[name] = _defaulted(out[name], sub)
        return out
    if isinstance(value, list) and "items" in schema:
        return [_defaulted(item, schema["items"]) for item in value]
    return value


def _evaluations(value: Any, schema: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(rule, passed, rendered message) of every supported rule on ``value`` and below."""
    env = celpy.Environment()
    out: list[tuple[str, bool, str]] = []
    for rule in schema.get("x-kubernetes-validations", []):
        if any(word in rule["rule"] for word in _UNSUPPORTED):
            continue
        activation = {"self": json_to_cel(value)}
        passed = env.program(env.compile(rule["rule"])).evaluate(activation)
        assert isinstance(passed, celpy.celtypes.BoolType), (rule["rule"], passed)
        message = ""
        if not passed:
            message = str(env.program(env.compile(rule["messageExpression"])).evaluate(activation))
        out.append((rule["rule"], bool(passed), message))
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                out += _evaluations(value[name], sub)
    if isinstance(value, list) and "items" in schema:
        for item in value:
            out += _evaluations(item, schema["items"])
    return out


def _twin_refusal(case: Case) -> str | None:
    """The Python twin's message when a cross-field rule refuses the spec, else None."""
    try:
        TcpMonitorSpec.model_validate(case.spec)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if e["type"] == "cross_field_rule"]
        return str(errors[0]["msg"]) if errors and len(exc.errors()) == 1 else None
    return None


@pytest.mark.parametrize("case", [c for c in CASES if c.valid], ids=lambda c: c.name)
def test_valid_objects_pass_every_cel_rule(case: Case) -> None:
    schema = _spec_schema()
    evaluations = _evaluations(_defaulted(case.spec, schema), schema)
    assert evaluations, "no rule was evaluated"
    assert [rule for rule, passed, _ in evaluations if not passed] == []


REFUSED_BY_RULES = [
    c
    for c in CASES
    if not c.valid
    and (twin := _twin_refusal(c)) is not None
    and not any(m in twin for m in _UNSUPPORTED_MESSAGES)
]


def test_the_table_has_cases_refused_by_rules() -> None:
    assert len(REFUSED_BY_RULES) >= 20


@pytest.mark.parametrize("case", REFUSED_BY_RULES, ids=lambda c: c.name)
def test_cel_refuses_what_the_python_twin_refuses_with_its_message(case: Case) -> None:
    twin = _twin_refusal(case)
    assert twin is not None
    schema = _spec_schema()
    evaluations = _evaluations(_defaulted(case.spec, schema), schema)
    failed = [message for _, passed, message in evaluations if not passed]
    assert failed, f"CEL accepts what Python refuses: {twin}"
    assert twin in failed, (twin, failed)
