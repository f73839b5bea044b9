"""The README's reference tables, generated from the same models as the CRD.

A test compares the README with this output, so documentation cannot drift from the API.
"""

from __future__ import annotations

import json
from typing import Any

from .crd import build_crd, build_policy_crd
from .durations import DURATION_PATTERN
from .protocol_docs import protocol_table
from .result import ERROR_CODE_DOCS, WARNING_CODE_DOCS
from .status import CONDITION_REASONS, EVENT_DOCS

BEGIN = "<!-- BEGIN GENERATED: {name} (tcpmonitor.api.reference_tables) -->"
END = "<!-- END GENERATED: {name} -->"


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = str(schema.get("type", "object"))
    if kind == "array":
        return f"list of {_type(schema['items'])} (max {schema['maxItems']})"
    if schema.get("pattern") == DURATION_PATTERN:
        return "duration"
    if schema.get("format") == "date-time":
        return "RFC 3339 time"
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        return f"integer {schema['minimum']}-{schema['maximum']}"
    return kind


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


_RESULT = "lastResult"


def _rows(schema: dict[str, Any], prefix: str, required: bool) -> list[str]:
    rows = []
    wanted = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        default = f"`{_yaml_scalar(sub['default'])}`" if "default" in sub else ""
        need = "yes" if required and name in wanted else ""
        desc = str(sub.get("description", "")).replace("|", "\\|")
        if name == _RESULT:  # one table of its own (Probe result), not repeated per place
            rows.append(f"| `{path}` | [probe result](#probe-result) | | | {desc} |")
            continue
        rows.append(f"| `{path}` | {_type(sub)} | {default} | {need} | {desc} |")
        inner = sub["items"] if sub.get("type") == "array" else sub
        if inner.get("properties"):
            child = f"{path}[]" if sub.get("type") == "array" else path
            rows += _rows(inner, child, required)
    return rows


def _table(schema: dict[str, Any], prefix: str, required: bool) -> str:
    head = "| Field | Type | Default | Required | Description |\n|---|---|---|---|---|\n"
    return head + "\n".join(_rows(schema, prefix, required))


def _conditions() -> str:
    rows = []
    for row in CONDITION_REASONS:
        reason = (
            f"`{row.reason.value}`"
            if row.reason is not None
            else "the error code in CamelCase (`ConnectionRefused`, see Error codes)"
        )
        rows.append(f"| `{row.type.value}` | `{row.status}` | {reason} | {row.meaning} |")
    return "| Type | Status | Reason | Meaning |\n|---|---|---|---|\n" + "\n".join(rows)


def _events() -> str:
    rows = [
        f"| `{kind}` | `{reason.value}` | {doc} |" for reason, (kind, doc) in EVENT_DOCS.items()
    ]
    return "| Type | Reason | When |\n|---|---|---|\n" + "\n".join(rows)


def sections() -> dict[str, str]:
    """Generated markdown, by section name."""
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    policy_root = build_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]
    errors = "| Code | Meaning |\n|---|---|\n" + "\n".join(
        f"| `{code.value}` | {doc} |" for code, doc in ERROR_CODE_DOCS.items()
    )
    warnings = "| Code | Meaning |\n|---|---|\n" + "\n".join(
        f"| `{code.value}` | {doc} |" for code, doc in WARNING_CODE_DOCS.items()
    )
    return {
        "spec": _table(root["spec"], "spec", True),
        "result": _table(root["status"]["properties"]["lastResult"], "", False),
        "status": _table(root["status"], "status", False),
        "conditions": _conditions(),
        "events": _events(),
        "error-codes": errors,
        "warning-codes": warnings,
        "protocols": protocol_table(),
        "policy": _table(policy_root["spec"], "spec", True),
    }


def render_into(text: str) -> str:
    """``text`` with every generated section replaced by its current content."""
    for name, body in sections().items():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        start = text.find(begin)
        stop = text.find(end)
        if start < 0 or stop < 0:
            raise ValueError(f"README lacks the markers for {name}")
        text = text[: start + len(begin)] + "\n" + body + "\n" + text[stop:]
    return text


if __name__ == "__main__":
    import sys
    from pathlib import Path

    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    readme.write_text(render_into(readme.read_text()))
