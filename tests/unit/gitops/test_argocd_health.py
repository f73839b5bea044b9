"""GitOps health of a TcpMonitor, exactly as docs/gitops.md tells users to configure it.

The Argo CD health check (Lua) and the Flux ``healthCheckExprs`` (CEL) are taken from the page
itself, so the documentation cannot drift from what is tested. They run against statuses built
by the operator's own status code (``tcpmonitor.reporting``), so a change in conditions or
reasons shows up here. The Lua runs in Lua 5.1, the language of Argo CD's gopher-lua.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from lupa import lua51

from tcpmonitor.api import CONDITION_REASONS, ConditionType, ProbeResult
from tcpmonitor.reporting import SpecProblem, build_status, status_body
from tcpmonitor.reporting.record import MonitorRecord, advance, pause

REPO_ROOT = Path(__file__).resolve().parents[3]
GITOPS_DOC = REPO_ROOT / "docs" / "gitops.md"
HEALTH_KEY = "resource.customizations.health.tcpmonitor.dev_TcpMonitor"
TCPMONITOR_API_VERSION = "tcpmonitor.dev/v1alpha1"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

Obj = dict[str, Any]


def yaml_blocks(path: Path) -> list[list[Any]]:
    """The documents of every ```yaml block of a Markdown file, in order."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)
    return [[d for d in yaml.safe_load_all(block) if d is not None] for block in blocks]


def documented_objects(kind: str) -> list[Obj]:
    return [d for block in yaml_blocks(GITOPS_DOC) for d in block if d.get("kind") == kind]


def argocd_health_script() -> str:
    (config_map,) = [
        cm for cm in documented_objects("ConfigMap") if cm["metadata"]["name"] == "argocd-cm"
    ]
    script: str = config_map["data"][HEALTH_KEY]
    return script


def argocd_health(obj: Mapping[str, Any], script: str | None = None) -> dict[str, str]:
    """Run the documented health check the way Argo CD does: ``obj`` global, table returned."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script if script is not None else argocd_health_script())
    return {str(k): str(v) for k, v in result.items()}


def flux_expressions(kustomization: str) -> dict[str, str]:
    (ks,) = [
        k for k in documented_objects("Kustomization") if k["metadata"]["name"] == kustomization
    ]
    (exprs,) = [e for e in ks["spec"]["healthCheckExprs"] if e["kind"] == "TcpMonitor"]
    assert exprs["apiVersion"] == TCPMONITOR_API_VERSION
    return {k: v for k, v in exprs.items() if k in ("inProgress", "failed", "current")}


def flux_health(obj: Mapping[str, Any], exprs: Mapping[str, str]) -> str:
    """kstatus with Flux's CEL extension (fluxcd/pkg runtime/cel StatusEvaluator).

    observedGeneration first; then inProgress, failed, current, the first true one wins;
    none true is InProgress. An expression that cannot be evaluated (no ``status`` yet) makes
    the status Unknown, which Flux keeps waiting on like InProgress.
    """
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    if "observedGeneration" in status and status["observedGeneration"] != generation:
        return "InProgress"
    env = celpy.Environment()
    activation = {key: json_to_cel(value) for key, value in obj.items()}
    for key, verdict in (
        ("inProgress", "InProgress"),
        ("failed", "Failed"),
        ("current", "Current"),
    ):
        if key not in exprs:
            continue
        try:
            value = env.program(env.compile(exprs[key])).evaluate(activation)
        except CELEvalError:
            return "Unknown"
        if isinstance(value, CELEvalError):
            return "Unknown"
        if value:
            return verdict
    return "InProgress"


# -- sample TcpMonitors with statuses computed by the operator's own code ----------------------


def probe(state: str, code: str | None = None, message: str = "") -> ProbeResult:
    body: dict[str, Any] = {
        "state": state,
        "startedAt": NOW.isoformat(),
        "remoteAddress": "10.0.0.7:5432",
        "timings": {"dns": 1.2, "connect": 0.8, "total": 2.5},
    }
    if state == "Down":
        body["error"] = {"code": code, "message": message}
    if state == "Degraded":
        body["warnings"] = [{"code": code, "message": message}]
    return ProbeResult.model_validate(body)


def monitor(status: dict[str, Any] | None, *, generation: int = 1, paused: bool = False) -> Obj:
    obj: Obj = {
        "apiVersion": TCPMONITOR_API_VERSION,
        "kind": "TcpMonitor",
        "metadata": {"name": "db", "namespace": "checkout", "generation": generation},
        "spec": {"host": "db.checkout.svc", "port": 5432, "paused": paused},
    }
    if status is not None:
        obj["status"] = status
    return obj


def operator_status(
    *results: ProbeResult,
    problem: SpecProblem | None = None,
    paused: bool = False,
    generation: int = 1,
    failure_threshold: int = 1,
    maintenance: bool = False,
) -> dict[str, Any]:
    record = MonitorRecord()
    until = NOW + timedelta(hours=1) if maintenance else None
    for result in results:
        record, _ = advance(
            record,
            result,
            failure_threshold=failure_threshold,
            success_threshold=1,
            now=NOW,
            maintenance_until=until,
        )
    if paused:
        record, _ = pause(record, NOW)
    return status_body(build_status(record, problem, generation, [], NOW))


UP = probe("Up")
DOWN = probe("Down", "CONNECTION_REFUSED", "10.0.0.7:5432: Connection refused")
DEGRADED = probe("Degraded", "RESPONSE_TIME_DEGRADED", "took 80.0ms, more than 50ms")
MISSING_SECRET = SpecProblem("ReferenceNotFound", "Secret checkout/payload not found")


@pytest.fixture(scope="module")
def samples() -> dict[str, Obj]:
    """Named TcpMonitors in every situation the health checks distinguish."""
    return {
        "just applied": monitor(None),
        "spec changed, not observed": monitor(operator_status(UP, generation=1), generation=2),
        "accepted, no result yet": monitor(operator_status()),
        "up": monitor(operator_status(UP)),
        "degraded": monitor(operator_status(DEGRADED)),
        "down": monitor(operator_status(DOWN)),
        "failing, not yet down": monitor(operator_status(UP, DOWN, failure_threshold=3)),
        "missing secret": monitor(operator_status(problem=MISSING_SECRET)),
        "paused": monitor(operator_status(UP, paused=True), paused=True),
        "down in a maintenance window": monitor(operator_status(UP, DOWN, maintenance=True)),
    }


def test_the_samples_are_what_the_operator_writes(samples: dict[str, Obj]) -> None:
    """Guard the premises of the tests below, so they fail for the right reason."""

    def conditions(name: str) -> dict[str, tuple[str, str]]:
        found = samples[name]["status"]["conditions"]
        return {c["type"]: (c["status"], c["reason"]) for c in found}

    assert conditions("accepted, no result yet")["Reachable"] == ("Unknown", "NoResult")
    assert conditions("down")["Ready"] == ("True", "Probing")
    assert conditions("down")["Reachable"] == ("False", "ConnectionRefused")
    assert conditions("failing, not yet down")["Reachable"] == ("True", "TargetReachable")
    assert conditions("missing secret")["Ready"] == ("False", "ReferenceNotFound")
    assert conditions("paused")["Ready"] == ("True", "Paused")
    assert conditions("down in a maintenance window")["Ready"] == ("True", "Maintenance")
    assert conditions("down in a maintenance window")["Reachable"][0] == "False"  # as observed
    assert samples["down in a maintenance window"]["status"]["state"] == "Maintenance"
    assert samples["spec changed, not observed"]["status"]["observedGeneration"] == 1


# -- Argo CD ------------------------------------------------------------------------------------

ARGOCD_EXPECTED = {
    "just applied": ("Progressing", "Waiting for the operator to report on this monitor"),
    "spec changed, not observed": (
        "Progressing",
        "Waiting for the operator to observe generation 2",
    ),
    "accepted, no result yet": ("Progressing", "Waiting for the first probe result"),
    "up": ("Healthy", "10.0.0.7:5432 Up"),
    "degraded": ("Healthy", "RESPONSE_TIME_DEGRADED"),
    "down": ("Healthy", "The target is down: ConnectionRefused: CONNECTION_REFUSED"),
    # Still Up (failureThreshold 3); the message is the last probe's.
    "failing, not yet down": ("Healthy", "CONNECTION_REFUSED 10.0.0.7:5432"),
    "missing secret": ("Degraded", "ReferenceNotFound: Secret checkout/payload not found"),
    "paused": ("Suspended", "Probing is paused (spec.paused)"),
    "down in a maintenance window": ("Healthy", "Maintenance: in a maintenance window until"),
}


@pytest.mark.parametrize("name", list(ARGOCD_EXPECTED))
def test_argocd_health(samples: dict[str, Obj], name: str) -> None:
    status, message_start = ARGOCD_EXPECTED[name]
    health = argocd_health(samples[name])
    assert health["status"] == status
    assert health["message"].startswith(message_start), health["message"]


def test_argocd_down_target_is_degraded_when_the_flag_is_set(samples: dict[str, Obj]) -> None:
    default = argocd_health_script()
    flag = "local down_target_is_degraded = false"
    assert default.count(flag) == 1
    strict = default.replace(flag, "local down_target_is_degraded = true")
    assert argocd_health(samples["down"], strict)["status"] == "Degraded"
    for name in (
        "up",
        "degraded",
        "accepted, no result yet",
        "paused",
        "down in a maintenance window",
    ):
        assert argocd_health(samples[name], strict) == argocd_health(samples[name]), name


def test_argocd_health_without_conditions_or_message_is_progressing() -> None:
    """An older or foreign status: no conditions, or conditions without messages."""
    bare = monitor({"observedGeneration": 1})
    assert argocd_health(bare)["status"] == "Progressing"
    terse = monitor(
        {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "InvalidSpec"},
            ],
        }
    )
    assert argocd_health(terse) == {"status": "Degraded", "message": "InvalidSpec"}


# -- Flux ---------------------------------------------------------------------------------------

FLUX_EXPECTED = {
    # name: (recommended, strict)
    "just applied": ("Unknown", "Unknown"),
    "spec changed, not observed": ("InProgress", "InProgress"),
    "accepted, no result yet": ("Current", "InProgress"),
    "up": ("Current", "Current"),
    "degraded": ("Current", "Current"),
    "down": ("Current", "Failed"),
    "failing, not yet down": ("Current", "Current"),
    "missing secret": ("Failed", "Failed"),
    "paused": ("Current", "Current"),
}


@pytest.mark.parametrize("name", list(FLUX_EXPECTED))
def test_flux_health_check_expressions(samples: dict[str, Obj], name: str) -> None:
    recommended, strict = FLUX_EXPECTED[name]
    assert flux_health(samples[name], flux_expressions("checkout-monitors")) == recommended
    assert flux_health(samples[name], flux_expressions("checkout-smoke-test")) == strict


def test_flux_helmrelease_replaces_crds_on_upgrade() -> None:
    (release,) = documented_objects("HelmRelease")
    assert release["spec"]["upgrade"]["crds"] == "CreateReplace"
    assert release["spec"]["install"]["crds"] == "Create"
    chart = release["spec"]["chart"]["spec"]["chart"]
    assert (REPO_ROOT / chart / "Chart.yaml").is_file()


def test_argocd_applications_diff_server_side() -> None:
    apps = documented_objects("Application")
    assert apps
    monitors = next(a for a in apps if a["metadata"]["name"] == "checkout-monitors")
    compare = monitors["metadata"]["annotations"]["argocd.argoproj.io/compare-options"]
    assert "ServerSideDiff=true" in compare.split(",")
    operator = next(a for a in apps if a["metadata"]["name"] == "tcpmonitor-operator")
    assert (REPO_ROOT / operator["spec"]["source"]["path"] / "Chart.yaml").is_file()


def test_every_yaml_block_of_the_gitops_page_parses() -> None:
    blocks = yaml_blocks(GITOPS_DOC)
    assert len(blocks) >= 6
    for block in blocks:
        for document in block:
            assert isinstance(document, dict)
            assert {"apiVersion", "kind", "metadata"} <= document.keys()


def test_the_condition_table_names_every_condition_type_and_reason() -> None:
    """docs/gitops.md's table agrees with the one vocabulary (tcpmonitor.api.status)."""
    text = GITOPS_DOC.read_text()
    table = text[text.index("| Condition |") : text.index("`status.observedGeneration`")]
    rows = {
        line.split("|")[1].strip().split()[0].strip("`"): line
        for line in table.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == {t.value for t in ConditionType}
    for row in CONDITION_REASONS:
        if row.reason is not None:
            assert f"`{row.reason.value}`" in rows[row.type.value], (row.type, row.reason)
