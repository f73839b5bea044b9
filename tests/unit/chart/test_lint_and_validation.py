"""``helm lint``, the rendered manifests against the Kubernetes schemas, and namespaces."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from .rendering import CHART, CI_VALUES, CRD_KINDS, NAMESPACE, RELEASE, RENDERINGS, helm, render

# Kubernetes versions the rendered manifests must validate against: the chart's minimum and the
# version of the e2e control plane.
KUBE_VERSIONS = ("1.29.0", "1.36.0")
# Kinds a version does not serve: on 1.29 the runner admission policy must be disabled
# (runnerAdmissionPolicy.enabled=false), or the install fails on its kind.
NEWER_KINDS = {
    "1.29.0": {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
}


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
    assert unvalidated <= CRD_KINDS | NEWER_KINDS.get(kube_version, set())


def test_minimum_kubernetes_version_is_the_one_validated_against() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBE_VERSIONS[0]}-0"
    too_old = helm("template", RELEASE, str(CHART), "--kube-version", "1.28.0")
    assert too_old.returncode != 0
    assert "kubeVersion" in too_old.stderr


def test_every_object_is_namespaced_to_the_release_or_cluster_scoped() -> None:
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for rendering in RENDERINGS.values():
        for manifest in render(*rendering):
            namespace = manifest["metadata"].get("namespace")
            if manifest["kind"] in cluster_scoped:
                assert namespace is None
            elif manifest["kind"] not in ("Role", "RoleBinding", "ConfigMap"):
                assert namespace == NAMESPACE, manifest["kind"]
            else:
                assert namespace, manifest["kind"]
