"""``TcpMonitorPolicy``: the platform team's word on what monitors may probe, per namespace.

A cluster-scoped resource rather than chart values: only cluster-wide RBAC can write it (a
monitor's author cannot loosen it), GitOps tools manage it like any object, ``kubectl get
tcpmonitorpolicies`` shows what is in force, several teams' policies compose, and the operator
watches it, so a change acts on the next probe without a restart or a rollout. The standalone
runtime and the CLI read the same documents from a file (``--policy``).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .rules import ApiModel, CrossFieldRule
from .spec import OBJECT_NAME_PATTERN, Duration

POLICY_KIND = "TcpMonitorPolicy"
POLICY_PLURAL = "tcpmonitorpolicies"
MAX_RULES = 64
MAX_RULE_ITEMS = 64
MAX_SELECTOR_ITEMS = 16

RULE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
PORT_RANGE_PATTERN = r"^[0-9]{1,5}(-[0-9]{1,5})?$"
# A host name, optionally starting with one "*." label: "*.svc.cluster.local" matches any name
# below it. No other wildcard: glob matching stays a suffix compare (linear, no backtracking).
HOST_PATTERN_PATTERN = (
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*\.?$|^\*$"
)
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"  # noqa: E501
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

LabelKey = Annotated[str, Field(max_length=317, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class PolicyAction(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(ApiModel):
    key: LabelKey = Field(description="The label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[LabelValue] = Field(
        default_factory=list,
        max_length=MAX_SELECTOR_ITEMS,
        description="For In and NotIn: the values; empty for Exists and DoesNotExist.",
    )


class LabelSelector(ApiModel):
    """A Kubernetes label selector; all of its terms must match."""

    # Keys are plain strings in the schema (a pattern on keys becomes patternProperties, which
    # a structural schema cannot have); a key that is no label key simply never matches.
    match_labels: dict[Annotated[str, Field(max_length=317)], LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_SELECTOR_ITEMS,
        description="Labels the namespace must carry with exactly these values.",
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        max_length=MAX_SELECTOR_ITEMS,
        description="Further requirements on the namespace's labels.",
    )


def _bad_cidr(rule: Any) -> str | None:
    for item in rule.cidrs:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return "cidrs must be address ranges such as 10.0.0.0/8"
    return None


def _bad_port(rule: Any) -> str | None:
    for item in rule.ports:
        if not all(1 <= int(n) <= 65535 for n in item.split("-")):
            return "ports must be within 1-65535"
    return None


class TargetRule(ApiModel):
    """One rule: the targets it matches (every given criterion must hold) and what to do."""

    cross_field_rules: ClassVar[tuple[CrossFieldRule, ...]] = (
        CrossFieldRule(
            rule="!has(self.cidrs) || self.cidrs.all(c, isCIDR(c))",
            message_expression="'cidrs must be address ranges such as 10.0.0.0/8'",
            check=_bad_cidr,
            field_path=".cidrs",
        ),
        CrossFieldRule(
            rule="!has(self.ports) || self.ports.all(p, p.split('-').all(n, int(n) >= 1 && "
            "int(n) <= 65535))",
            message_expression="'ports must be within 1-65535'",
            check=_bad_port,
            field_path=".ports",
        ),
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=RULE_NAME_PATTERN,
        description="Named in TARGET_FORBIDDEN results, Events and the Ready condition.",
    )
    action: PolicyAction = Field(description="Allow or Deny the matched targets.")
    cidrs: list[Annotated[str, Field(max_length=49)]] = Field(
        default_factory=list,
        max_length=MAX_RULE_ITEMS,
        description="Address ranges (e.g. 10.0.0.0/8, fd00::/8, 10.96.0.1/32), matched "
        "against every address the probe is about to connect to, after name resolution. "
        "Empty: any address.",
    )
    ports: list[Annotated[str, Field(max_length=11, pattern=PORT_RANGE_PATTERN)]] = Field(
        default_factory=list,
        max_length=MAX_RULE_ITEMS,
        description='Ports or ranges ("5432", "8000-8999"). Empty: any port.',
    )
    hosts: list[Annotated[str, Field(max_length=253, pattern=HOST_PATTERN_PATTERN)]] = Field(
        default_factory=list,
        max_length=MAX_RULE_ITEMS,
        description='spec.host as written, exactly or as "*.suffix" (any name below it). '
        "A name only matches as written; its addresses are still matched against cidrs of "
        "this and every other rule, so a name cannot reach a denied address. Empty: any host.",
    )
    # No schema default: a default inside a list item makes `kubectl apply` report every
    # policy as configured on each apply.
    record_responses: bool | None = Field(
        default=None,
        description="Allow only: whether the reply's bytes (response excerpt, assertion "
        "actual values, protocol details) may be stored in status for these targets; false "
        "keeps only sizes, timings and verdicts. Absent: true.",
    )

    @field_validator("cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address range (CIDR)") from None
        return value

    @field_validator("ports")
    @classmethod
    def _port_ranges(cls, value: list[str]) -> list[str]:
        for item in value:
            low, _, high = item.partition("-")
            first, last = int(low), int(high or low)
            if not 1 <= first <= last <= 65535:
                raise ValueError(f"{item!r} is not a port range within 1-65535")
        return value


class NamespaceLimitsSpec(ApiModel):
    """Limits per namespace; with several policies selecting a namespace the lowest wins."""

    max_monitors: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Monitors of the namespace that are probed; the rest (by name) are "
        "refused with Ready=False NamespaceLimitExceeded.",
    )
    min_interval: Duration | None = Field(
        default=None,
        description="The shortest spec.interval allowed in the namespace (e.g. 30s).",
    )
    max_concurrent_probes: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Probes of the namespace in flight at once in one operator or runner.",
    )


class TcpMonitorPolicySpec(ApiModel):
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="The namespaces this policy covers; absent: every namespace.",
    )
    rules: list[TargetRule] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        description="Checked in order, first match wins within this policy; over several "
        "policies a Deny wins over an Allow. An Allow whose cidrs contain the address also lifts "
        "the built-in refusal of link-local, cloud metadata and loopback addresses (a rule "
        "with hosts only does not: names can be made to resolve anywhere).",
    )
    default_action: PolicyAction | None = Field(
        default=None,
        description="For a target no rule matches, in the namespaces covered: Deny makes the "
        "rules an allow-list. Absent: Allow (the built-in refusals still apply).",
    )
    limits: NamespaceLimitsSpec | None = Field(
        default=None, description="Fairness limits for each covered namespace."
    )

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[TargetRule]) -> list[TargetRule]:
        names = [rule.name for rule in value]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique within a policy")
        return value


class PolicyMeta(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=253, pattern=OBJECT_NAME_PATTERN)
    generation: int | None = None


class TcpMonitorPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    api_version: Literal["tcpmonitor.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TcpMonitorPolicy"]
    metadata: PolicyMeta
    spec: TcpMonitorPolicySpec
