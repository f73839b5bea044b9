"""A real Kubernetes control plane (etcd + kube-apiserver) for the e2e tests.

See README.md in this directory. ``python -m tests.controlplane`` starts one by hand.
"""

from tests.controlplane.build import (
    Binaries,
    BuildError,
    GoNotFoundError,
    ensure_binaries,
    etcd_version,
    find_binaries,
    kubernetes_version,
)
from tests.controlplane.cluster import CRD_DIR, Cluster, KubectlError
from tests.controlplane.controlplane import ControlPlane
from tests.controlplane.processes import StartupError

__all__ = [
    "CRD_DIR",
    "Binaries",
    "BuildError",
    "Cluster",
    "ControlPlane",
    "GoNotFoundError",
    "KubectlError",
    "StartupError",
    "ensure_binaries",
    "etcd_version",
    "find_binaries",
    "kubernetes_version",
]
