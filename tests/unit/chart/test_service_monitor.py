"""The metrics Service and the ServiceMonitor that scrapes it."""

from __future__ import annotations

import re

import pytest

from tcpmonitor.kube.leases import LOCATION_LABEL

from .rendering import (
    METRICS_SERVICE,
    NAMESPACE,
    RENDERINGS,
    container,
    deployments,
    monitoring,
    objects,
    render,
)


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
