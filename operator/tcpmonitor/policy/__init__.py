"""Target policy: which namespaces may probe which destinations, and their fairness limits.

Pure decisions over ``api.policy`` objects; the engine asks them on every connection, the
scheduler for limits, the kube layer feeds them from a watch and the standalone mode from a file.
"""

from .book import PolicyBook, TargetGuard
from .targets import (
    ALLOW_ALL,
    BUILTIN_REFUSALS,
    Decision,
    NamespaceLimits,
    PolicySet,
    compile_policies,
)

__all__ = [
    "ALLOW_ALL",
    "BUILTIN_REFUSALS",
    "Decision",
    "NamespaceLimits",
    "PolicyBook",
    "PolicySet",
    "TargetGuard",
    "compile_policies",
]
