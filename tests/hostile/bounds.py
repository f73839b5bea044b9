"""Whether a probe result fits the status the API server will accept.

Two checks of the same bounds: the pydantic models (what the operator validates against) and
the CRD's OpenAPI schema generated from them (what the API server enforces, 422 otherwise).
"""

from __future__ import annotations

from typing import Any

import jsonschema

from tcpmonitor.api import ProbeResult, TcpMonitorStatus
from tcpmonitor.api.crd import build_crd


def _json_schema(schema: Any) -> Any:
    """OpenAPI's ``nullable: true`` spelt the JSON Schema way; Kubernetes extensions dropped."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _json_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def status_schema() -> dict[str, Any]:
    crd = build_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    return _json_schema(schema)  # type: ignore[no-any-return]


def assert_result_fits_the_status(result: ProbeResult) -> None:
    """Raises when the API server would refuse a status carrying ``result``."""
    status = {"state": result.state.value, "lastResult": result.to_json_dict()}
    TcpMonitorStatus.model_validate(status)
    jsonschema.validate(status, status_schema())
