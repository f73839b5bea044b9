"""Shorthand for building a spec and running one probe from a test."""

from __future__ import annotations

from typing import Any

from tcpmonitor.api import ProbeResult, TcpMonitorSpec
from tcpmonitor.probe import ProbeMaterial, compile_plan, run_probe


def contains(text: str) -> dict[str, str]:
    return {"source": "ResponseData", "comparison": "Contains", "target": text}


async def probe(port: int, material: ProbeMaterial | None = None, **spec: Any) -> ProbeResult:
    spec.setdefault("host", "127.0.0.1")
    spec.setdefault("timeout", "2s")
    return await run_probe(
        compile_plan(TcpMonitorSpec.model_validate({"port": port, **spec}), material)
    )
