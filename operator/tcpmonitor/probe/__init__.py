"""The probe engine: asyncio and ssl only, nothing Kubernetes (an import-linter contract)."""

from .engine import probe_once, run_probe
from .plan import PlanError, ProbeMaterial, ProbePlan, compile_plan
from .tls import ClientCertificate

__all__ = [
    "ClientCertificate",
    "PlanError",
    "ProbeMaterial",
    "ProbePlan",
    "compile_plan",
    "probe_once",
    "run_probe",
]
