"""Faults the e2e tests inject into a real control plane, one module per kind of fault.

The crash/restart/compaction controls live on tests.controlplane.ControlPlane,
which owns the processes; here are the faults that sit between a client and the
API server: a TCP proxy that can cut the connection (``proxy``), API Priority and
Fairness throttling (``throttling``) and ServiceAccount identities with or without
RBAC (``identities``).
"""

from tests.e2e.faults.identities import grant_cluster_admin, service_account_kubeconfig
from tests.e2e.faults.proxy import ApiProxy
from tests.e2e.faults.throttling import throttle

__all__ = ["ApiProxy", "grant_cluster_admin", "service_account_kubeconfig", "throttle"]
