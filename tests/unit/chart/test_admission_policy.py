"""The runner admission policy: rendered in the distributed mode, keyed on each location's own
ServiceAccount. What it allows and refuses is tested on the API server, with the runners' tokens,
in tests/e2e/test_runner_admission.py."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tcpmonitor.kube.leases import LOCATION_LABEL

from .rendering import (
    CHART,
    CONTROLLER,
    FULLNAME,
    NAMESPACE,
    Manifest,
    ci,
    objects,
    refused,
    render,
    runner_sa,
)

POLICY = f"{NAMESPACE}-{FULLNAME}-runners"


def policy_and_binding(manifests: tuple[Manifest, ...]) -> tuple[Manifest, Manifest]:
    (policy,) = objects(manifests, "ValidatingAdmissionPolicy")
    (binding,) = objects(manifests, "ValidatingAdmissionPolicyBinding")
    return policy, binding


def user(account: str) -> str:
    return f"system:serviceaccount:{NAMESPACE}:{account}"


def locations_by_user(policy: Manifest) -> dict[str, str]:
    """The map from user name to location the policy keys on (a JSON object literal)."""
    (condition,) = policy["spec"]["matchConditions"]
    match = re.fullmatch(r"request\.userInfo\.username in (\{.*\})", condition["expression"])
    assert match, condition["expression"]
    mapping: dict[str, str] = json.loads(match.group(1))
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert variables["location"] == f"{match.group(1)}[request.userInfo.username]"
    return mapping


def test_the_distributed_mode_confines_its_runners_by_default() -> None:
    policy, binding = policy_and_binding(render())
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == POLICY
    assert "namespace" not in policy["metadata"]
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    rules = {
        (group, resource, operation)
        for rule in spec["matchConstraints"]["resourceRules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for operation in rule["operations"]
    }
    assert rules == {
        (group, resource, operation)
        for group, resource in [
            ("coordination.k8s.io", "leases"),
            ("tcpmonitor.dev", "tcpmonitors"),
            ("tcpmonitor.dev", "tcpmonitors/status"),
        ]
        for operation in ("CREATE", "UPDATE", "DELETE")
    }
    assert binding["spec"] == {"policyName": POLICY, "validationActions": ["Deny"]}
    # Only the runners: the controller is not concerned.
    assert locations_by_user(policy) == {user(runner_sa("default")): "default"}
    # Each refusal is a 403 that says what was refused.
    for validation in spec["validations"]:
        assert validation["reason"] == "Forbidden"
        assert validation["message"] and validation["messageExpression"]


def test_every_runner_identity_maps_to_its_own_location_and_nothing_else() -> None:
    manifests = ci("multi-location")
    policy, _ = policy_and_binding(manifests)
    runners = {
        account["metadata"]["name"]: account["metadata"]["labels"][LOCATION_LABEL]
        for account in objects(manifests, "ServiceAccount")
        if account["metadata"]["labels"]["app.kubernetes.io/component"] == "runner"
    }
    assert runners == {
        runner_sa("eu-west"): "eu-west",
        runner_sa("us-east"): "us-east",
        runner_sa("ap-south"): "ap-south",
        f"{FULLNAME}-remote-on-premises": "on-premises",
        f"{FULLNAME}-remote-branch-office": "branch-office",
    }
    assert locations_by_user(policy) == {user(name): loc for name, loc in runners.items()}
    assert user(CONTROLLER) not in locations_by_user(policy)


def test_existing_service_accounts_are_keyed_by_their_location_suffix() -> None:
    policy, _ = policy_and_binding(ci("existing-serviceaccount"))
    assert locations_by_user(policy) == {user("tcpmonitor-runner-default"): "default"}


@pytest.mark.parametrize(
    "settings",
    [
        ("--set", "runnerAdmissionPolicy.enabled=false"),
        ("--set", "mode=all-in-one"),
        # No runner identity of this release to confine.
        ("--set-json", "locations=[]"),
    ],
    ids=["disabled", "all-in-one", "no-runners"],
)
def test_no_policy_without_the_distributed_mode_or_runners(settings: tuple[str, ...]) -> None:
    manifests = render(*settings)
    assert not objects(manifests, "ValidatingAdmissionPolicy")
    assert not objects(manifests, "ValidatingAdmissionPolicyBinding")


def test_no_policy_where_runners_report_to_another_cluster() -> None:
    # mode: runners. The policy belongs with the controller's release, on the API server the
    # runners write to (it lists their remote ServiceAccounts).
    manifests = ci("remote-runners")
    assert not objects(manifests, "ValidatingAdmissionPolicy")


def test_a_remote_location_alone_is_confined() -> None:
    policy, _ = policy_and_binding(
        render("--set-json", "locations=[]", "--set", "remoteLocations[0].name=edge")
    )
    assert locations_by_user(policy) == {user(f"{FULLNAME}-remote-edge"): "edge"}


def test_the_policy_can_be_tried_out_before_it_denies() -> None:
    _, binding = policy_and_binding(
        render("--set-json", 'runnerAdmissionPolicy.validationActions=["Warn","Audit"]')
    )
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    error = refused("--set-json", 'runnerAdmissionPolicy.validationActions=["Block"]')
    assert "runnerAdmissionPolicy.validationActions.0" in error
    assert "runnerAdmissionPolicy.validationActions" in refused(
        "--set-json", "runnerAdmissionPolicy.validationActions=[]"
    )


def test_status_defaults_come_from_the_crd() -> None:
    """A runner's first write fills in the CRD's status defaults (no change of the controller's
    fields); the policy reads them from the chart's CRD, so they cannot drift apart."""
    policy, _ = policy_and_binding(render())
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    crd = yaml.safe_load((CHART / "crds" / "tcpmonitors.tcpmonitor.dev.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    fields = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    defaults = {name: schema["default"] for name, schema in fields.items() if "default" in schema}
    assert defaults  # else the test proves nothing
    assert json.loads(variables["statusDefaults"]) == defaults
