"""ServiceAccounts and RBAC: exactly what each process uses, in each mode."""

from __future__ import annotations

from tcpmonitor.kube.leases import LOCATION_LABEL

from .rendering import (
    CONTROLLER,
    FULLNAME,
    NAMESPACE,
    RUNNER_ROLE,
    Manifest,
    args,
    ci,
    deployments,
    named,
    objects,
    pod_spec,
    refused,
    render,
    runner_sa,
)

# (API group, resource, verb, resource name or "" for any): the rules each process needs,
# measured by tests/e2e/helm/test_permissions.py, where each one is shown to be necessary.
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
# Whoever probes (the all-in-one operator, the runners) reads the target policy: always a
# ClusterRole, since policies and namespaces are cluster-scoped.
TARGET_POLICY_RULES: set[Rule] = {
    ("tcpmonitor.dev", "tcpmonitorpolicies", "list", ""),
    ("tcpmonitor.dev", "tcpmonitorpolicies", "watch", ""),
    ("", "namespaces", "list", ""),
    ("", "namespaces", "watch", ""),
}
TARGET_POLICY = f"{NAMESPACE}-{FULLNAME}-target-policy"
RUNNER_LEASE_RULES: set[Rule] = {
    ("coordination.k8s.io", "leases", verb, "")
    for verb in ("get", "list", "create", "update", "delete")
}
# For people, not processes: TcpMonitor write beside the Secret read of edit and admin.
USER_ROLES = {f"{NAMESPACE}-{FULLNAME}-edit", f"{NAMESPACE}-{FULLNAME}-view"}
READ = ("get", "list", "watch")
EDIT_RULES: set[Rule] = {
    ("tcpmonitor.dev", "tcpmonitors", verb, "")
    for verb in (*READ, "create", "update", "patch", "delete", "deletecollection")
} | {("tcpmonitor.dev", "tcpmonitors/status", verb, "") for verb in READ}
VIEW_RULES: set[Rule] = {
    ("tcpmonitor.dev", resource, verb, "")
    for resource in ("tcpmonitors", "tcpmonitors/status")
    for verb in READ
}


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


def test_controller_and_runners_get_separate_identities_and_exactly_their_rules() -> None:
    manifests = render()
    accounts = named(manifests, "ServiceAccount")
    assert accounts.keys() == {CONTROLLER, runner_sa("default")}
    assert accounts[runner_sa("default")]["metadata"]["labels"][LOCATION_LABEL] == "default"
    cluster_roles = named(manifests, "ClusterRole")
    cluster_bindings = named(manifests, "ClusterRoleBinding")
    # Cluster-scoped names carry the release namespace: two releases never collide.
    assert cluster_bindings.keys() == {
        f"{NAMESPACE}-{CONTROLLER}",
        f"{NAMESPACE}-{RUNNER_ROLE}",
        TARGET_POLICY,
    }
    assert cluster_roles.keys() == cluster_bindings.keys() | USER_ROLES
    assert flat_rules(cluster_roles[TARGET_POLICY]) == TARGET_POLICY_RULES
    assert subjects(cluster_bindings[TARGET_POLICY]) == {runner_sa("default")}
    assert flat_rules(cluster_roles[f"{NAMESPACE}-{CONTROLLER}"]) == OPERATOR_RULES
    assert flat_rules(cluster_roles[f"{NAMESPACE}-{RUNNER_ROLE}"]) == RUNNER_RULES
    for name, binding in cluster_bindings.items():
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name,
        }
    assert subjects(cluster_bindings[f"{NAMESPACE}-{CONTROLLER}"]) == {CONTROLLER}
    assert subjects(cluster_bindings[f"{NAMESPACE}-{RUNNER_ROLE}"]) == {runner_sa("default")}
    # Leases: a Role in the release namespace (where --lease-namespace points), per process.
    roles = named(manifests, "Role")
    bindings = named(manifests, "RoleBinding")
    assert roles.keys() == bindings.keys() == {f"{CONTROLLER}-leases", f"{RUNNER_ROLE}-leases"}
    assert all(r["metadata"]["namespace"] == NAMESPACE for r in [*roles.values()])
    assert flat_rules(roles[f"{CONTROLLER}-leases"]) == CONTROLLER_LEASE_RULES
    assert flat_rules(roles[f"{RUNNER_ROLE}-leases"]) == RUNNER_LEASE_RULES
    for name, binding in bindings.items():
        assert binding["metadata"]["namespace"] == NAMESPACE
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
    assert subjects(bindings[f"{CONTROLLER}-leases"]) == {CONTROLLER}
    assert subjects(bindings[f"{RUNNER_ROLE}-leases"]) == {runner_sa("default")}
    # Each pod runs as its own ServiceAccount.
    for workload in deployments(manifests).values():
        component = workload["spec"]["template"]["metadata"]["labels"][
            "app.kubernetes.io/component"
        ]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        expected = CONTROLLER if component == "controller" else runner_sa(labels[LOCATION_LABEL])
        assert pod_spec(workload)["serviceAccountName"] == expected


def test_remote_locations_get_an_identity_with_exactly_the_runner_rules() -> None:
    manifests = ci("multi-location")
    remotes = {f"{FULLNAME}-remote-on-premises", f"{FULLNAME}-remote-branch-office"}
    accounts = named(manifests, "ServiceAccount")
    runners = {runner_sa(n) for n in ("eu-west", "us-east", "ap-south")}
    assert accounts.keys() == {CONTROLLER} | runners | remotes
    for name in remotes:
        # Their tokens are used elsewhere; no pod here mounts one.
        assert accounts[name]["automountServiceAccountToken"] is False
    cluster_bindings = named(manifests, "ClusterRoleBinding")
    assert subjects(cluster_bindings[f"{NAMESPACE}-{RUNNER_ROLE}"]) == runners | remotes
    assert subjects(cluster_bindings[TARGET_POLICY]) == runners | remotes
    assert subjects(cluster_bindings[f"{NAMESPACE}-{CONTROLLER}"]) == {CONTROLLER}
    bindings = named(manifests, "RoleBinding")
    assert subjects(bindings[f"{RUNNER_ROLE}-leases"]) == runners | remotes
    assert subjects(bindings[f"{CONTROLLER}-leases"]) == {CONTROLLER}


def test_namespaced_rbac_is_one_role_per_watched_namespace_and_process() -> None:
    manifests = ci("namespaced-rbac")
    # Nothing cluster-wide, not even the target policy's role: the processes do not read it.
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
            ("team-a", RUNNER_ROLE),
            ("team-b", RUNNER_ROLE),
            (NAMESPACE, f"{CONTROLLER}-leases"),
            (NAMESPACE, f"{RUNNER_ROLE}-leases"),
        }
    )
    edge = f"{FULLNAME}-remote-edge"
    for namespace in ("team-a", "team-b"):
        assert flat_rules(roles[namespace, CONTROLLER]) == OPERATOR_RULES
        assert flat_rules(roles[namespace, RUNNER_ROLE]) == RUNNER_RULES
        assert subjects(bindings[namespace, CONTROLLER]) == {CONTROLLER}
        assert subjects(bindings[namespace, RUNNER_ROLE]) == {runner_sa("default"), edge}
    assert flat_rules(roles[NAMESPACE, f"{CONTROLLER}-leases"]) == CONTROLLER_LEASE_RULES
    assert flat_rules(roles[NAMESPACE, f"{RUNNER_ROLE}-leases"]) == RUNNER_LEASE_RULES
    assert subjects(bindings[NAMESPACE, f"{RUNNER_ROLE}-leases"]) == {runner_sa("default"), edge}
    for (namespace, name), binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == name, namespace
    for workload in deployments(manifests).values():
        assert [a for a in args(workload) if a.startswith("--namespace")] == [
            "--namespace=team-a",
            "--namespace=team-b",
        ]
        probes = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        assert ("--no-policy-watch" in args(workload)) is (probes != "controller")
    allowing = render("--set", "targetPolicy.allowedCIDRs={10.1.0.0/16,fd00::/8}")
    runner_args = args(deployments(allowing)[f"{FULLNAME}-runner-default"])
    assert runner_args[-2:] == ["--allow-target=10.1.0.0/16", "--allow-target=fd00::/8"]


def test_all_in_one_rbac_is_one_cluster_role_and_no_leases() -> None:
    manifests = ci("all-in-one")
    (account,) = objects(manifests, "ServiceAccount")
    policy_role = named(manifests, "ClusterRole").pop(TARGET_POLICY)
    assert flat_rules(policy_role) == TARGET_POLICY_RULES
    assert subjects(named(manifests, "ClusterRoleBinding")[TARGET_POLICY]) == {FULLNAME}
    (role,) = [
        r
        for r in objects(manifests, "ClusterRole")
        if r["metadata"]["name"] not in USER_ROLES | {TARGET_POLICY}
    ]
    (binding,) = [
        b
        for b in objects(manifests, "ClusterRoleBinding")
        if b["metadata"]["name"] != TARGET_POLICY
    ]
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
        f"{FULLNAME}-runner-default": "tcpmonitor-runner-default",
    }
    for setting, complaint in [
        ("serviceAccount.runnerName=r", "serviceAccount.controllerName is required"),
        ("mode=all-in-one", "serviceAccount.name is required"),
    ]:
        assert complaint in refused("--set", "serviceAccount.create=false", "--set", setting)
    assert "serviceAccount.runnerName is required" in refused(
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.controllerName=c",
    )


def aggregation(role: Manifest) -> set[str]:
    prefix = "rbac.authorization.k8s.io/aggregate-to-"
    labels = role["metadata"]["labels"]
    return {
        k.removeprefix(prefix) for k, v in labels.items() if k.startswith(prefix) and v == "true"
    }


def test_monitor_write_is_folded_into_edit_and_admin_which_read_secrets_and_read_into_view() -> (
    None
):
    for manifests in (render(), ci("all-in-one")):
        roles = named(manifests, "ClusterRole")
        edit, view = roles[f"{NAMESPACE}-{FULLNAME}-edit"], roles[f"{NAMESPACE}-{FULLNAME}-view"]
        # The built-in edit and admin already get and list Secrets: whoever may write a
        # TcpMonitor through them may read what it references anyway. view reads no Secret.
        assert aggregation(edit) == {"edit", "admin"}
        assert aggregation(view) == {"view"}
        assert flat_rules(edit) == EDIT_RULES
        assert flat_rules(view) == VIEW_RULES
        # Nothing is bound to them: the built-in roles take their rules in.
        bound = {b["roleRef"]["name"] for b in objects(manifests, "ClusterRoleBinding")}
        assert bound.isdisjoint(USER_ROLES)
        # Other aggregation labels would hand the rules to someone else.
        for role in roles.values():
            if role["metadata"]["name"] not in USER_ROLES:
                assert not aggregation(role)


def test_the_user_roles_can_be_left_out_and_are_not_made_with_namespaced_rbac() -> None:
    def user_roles(*options: str) -> set[str]:
        return {
            r["metadata"]["name"] for r in objects(render(*options), "ClusterRole")
        } & USER_ROLES

    assert user_roles() == USER_ROLES
    assert user_roles("--set", "rbac.aggregatedRoles=false") == set()
    assert (
        user_roles(
            "--set",
            "rbac.create=false",
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.controllerName=c",
            "--set",
            "serviceAccount.runnerName=r",
        )
        == set()
    )
    assert not objects(ci("namespaced-rbac"), "ClusterRole")
