"""What every rendered Deployment has, in every rendering: pod security, probes, identity,
selectors of its own."""

from __future__ import annotations

import pytest

from .rendering import RENDERINGS, args, container, deployments, pod_spec, render


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
