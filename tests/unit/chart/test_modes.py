"""The Deployments of each mode and set of values: distributed (a controller and runners per
location), all-in-one, runners reporting to a remote API server; and their command lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tcpmonitor.api import parse_duration
from tcpmonitor.cli.main import build_parser
from tcpmonitor.kube.leases import LOCATION_LABEL

from .rendering import (
    CHART,
    CONTROLLER,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    RENDERINGS,
    Manifest,
    args,
    ci,
    container,
    deployment,
    deployments,
    objects,
    pod_spec,
    refused,
    render,
    runner_sa,
)


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
        "--heartbeat=300s",
        "--max-concurrency=256",
        "--write-budget=20",
        "--target-default-action=Allow",
    ]
    assert container(runner)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert runner["spec"]["strategy"] == controller["spec"]["strategy"]
    assert pod_spec(runner)["serviceAccountName"] == runner_sa("default")
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
        # Each location's runners have an identity of their own: the API server tells them apart.
        assert pod_spec(workload)["serviceAccountName"] == runner_sa(name)
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
        "--target-default-action=Allow",
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
        "--target-default-action=Allow",
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
