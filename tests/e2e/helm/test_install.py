"""`helm install` of the default values: the objects, as the API server keeps them."""

from __future__ import annotations

import json

from tests.controlplane import Cluster

from ..operator_process import get
from .chart_release import RELEASE, Release


def test_helm_install_creates_the_chart_objects(control_plane: Cluster, release: Release) -> None:
    assert "STATUS: deployed" in release.install_output
    notes = release.install_output.split("NOTES:", 1)[1]
    for name in (f"{RELEASE}-controller", f"{RELEASE}-runner-default"):
        assert f"kubectl -n {release.namespace} rollout status deployment/{name}" in notes
    kinds = sorted(m["kind"] for m in release.manifest)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",  # -edit and -view, for people (rbac.aggregatedRoles)
        "ClusterRole",
        "ClusterRole",  # -target-policy
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    for manifest in release.manifest:
        args = [f"{manifest['kind']}/{manifest['metadata']['name']}", "-o", "json"]
        if "namespace" in manifest["metadata"]:
            args += ["-n", manifest["metadata"]["namespace"]]
        live = json.loads(control_plane.kubectl("get", *args, check=True).stdout)
        assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # The API server kept the pod security settings as rendered (nothing dropped or defaulted).
    for name in release.all("Deployment"):
        live = get(control_plane, release.namespace, name, "deployment")
        pod = live["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The metrics Service selects every pod of the release: one scrape job for all of them.
    service = release.one("Service")
    for deployment in release.all("Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
