"""Which addresses a namespace's monitors may connect to: policies compiled, decisions made. Pure.

The decision is taken on the exact address about to be connected, after name resolution and
for every address tried, so a name that resolves to a refused address (or whose answer changes
between probes) gains nothing. Names in rules only narrow what a rule matches.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..api.durations import parse_duration
from ..api.policy import (
    LabelSelector,
    PolicyAction,
    SelectorOperator,
    TargetRule,
    TcpMonitorPolicy,
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

BUILTIN = "builtin"
ALLOW_TARGET = "--allow-target"
# Refused unless a policy rule explicitly allows them: the confused-deputy targets of a shared
# cluster. Link-local holds the metadata services of AWS, GCP, Azure, OpenStack and others
# (169.254.169.254) and the node-local link; the others are metadata services elsewhere, and the
# probing pod's own loopback ("this host" 0.0.0.0 reaches it as well).
BUILTIN_REFUSALS: tuple[tuple[str, tuple[Network, ...]], ...] = (
    (
        "link-local",
        (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")),
    ),
    (
        "cloud-metadata",
        (
            ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
            ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
        ),
    ),
    (
        "loopback",
        (
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
            ipaddress.ip_network("0.0.0.0/8"),
            ipaddress.ip_network("::/128"),
        ),
    ),
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # "policy/rule", "policy/defaultAction", "builtin/link-local", "default", ...
    record_responses: bool = True

    def describe(self) -> str:
        return f"allowed by {self.rule}" if self.allowed else f"refused by {self.rule}"


ALLOW_ALL = Decision(True, "no policy")


def plain_address(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:169.254.169.254) is the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for term in selector.match_expressions:
        present = term.key in labels
        if term.operator is SelectorOperator.IN:
            ok = present and labels[term.key] in term.values
        elif term.operator is SelectorOperator.NOT_IN:
            ok = not present or labels[term.key] not in term.values
        elif term.operator is SelectorOperator.EXISTS:
            ok = present
        else:
            ok = not present
        if not ok:
            return False
    return True


def host_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.rstrip(".").lower(), host.rstrip(".").lower()
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


@dataclass(frozen=True)
class CompiledRule:
    name: str
    action: PolicyAction
    networks: tuple[Network, ...]
    ports: tuple[tuple[int, int], ...]
    hosts: tuple[str, ...]
    record_responses: bool

    @classmethod
    def of(cls, rule: TargetRule) -> CompiledRule:
        ports = []
        for item in rule.ports:
            low, _, high = item.partition("-")
            ports.append((int(low), int(high or low)))
        return cls(
            name=rule.name,
            action=rule.action,
            networks=tuple(ipaddress.ip_network(c, strict=False) for c in rule.cidrs),
            ports=tuple(ports),
            hosts=tuple(rule.hosts),
            record_responses=rule.record_responses is not False,
        )

    def matches(self, host: str, address: Address, port: int) -> bool:
        if self.networks and not any(address in net for net in self.networks):
            return False
        if self.ports and not any(low <= port <= high for low, high in self.ports):
            return False
        return not self.hosts or any(host_matches(p, host) for p in self.hosts)


@dataclass(frozen=True)
class NamespaceLimits:
    """The tightest limits of the policies covering a namespace; None: not limited."""

    max_monitors: int | None = None
    min_interval: float | None = None  # seconds
    max_concurrent_probes: int | None = None

    def __post_init__(self) -> None:
        if self.max_monitors is not None and self.max_monitors < 0:
            raise ValueError(f"max_monitors must be at least 0, not {self.max_monitors}")
        if self.min_interval is not None and not (
            math.isfinite(self.min_interval) and self.min_interval > 0
        ):
            raise ValueError(f"min_interval must be a positive number, not {self.min_interval}")
        # 0 would leave the namespace's probes waiting forever, each dropped an interval later:
        # a policy that wants no probing sets max_monitors to 0, which says so on every monitor.
        if self.max_concurrent_probes is not None and self.max_concurrent_probes < 1:
            raise ValueError(
                f"max_concurrent_probes must be at least 1, not {self.max_concurrent_probes}"
            )


NO_LIMITS = NamespaceLimits()


@dataclass(frozen=True)
class CompiledPolicy:
    name: str
    selector: LabelSelector | None
    rules: tuple[CompiledRule, ...]
    deny_by_default: bool
    limits: NamespaceLimits

    @classmethod
    def of(cls, policy: TcpMonitorPolicy) -> CompiledPolicy:
        spec = policy.spec
        limits = spec.limits
        return cls(
            name=policy.metadata.name,
            selector=spec.namespace_selector,
            rules=tuple(CompiledRule.of(rule) for rule in spec.rules),
            deny_by_default=spec.default_action is PolicyAction.DENY,
            limits=NamespaceLimits(
                max_monitors=limits.max_monitors if limits else None,
                min_interval=(
                    parse_duration(limits.min_interval) if limits and limits.min_interval else None
                ),
                max_concurrent_probes=limits.max_concurrent_probes if limits else None,
            ),
        )

    def first_match(self, host: str, address: Address, port: int) -> CompiledRule | None:
        return next((rule for rule in self.rules if rule.matches(host, address, port)), None)


def _tightest(values: Sequence[float | int | None], *, highest: bool = False) -> float | None:
    given = [v for v in values if v is not None]
    if not given:
        return None
    return max(given) if highest else min(given)


@dataclass(frozen=True)
class PolicySet:
    """Every policy in force, and what applies where none covers a namespace."""

    policies: tuple[CompiledPolicy, ...] = ()
    deny_uncovered: bool = False  # the process's --target-default-action Deny
    builtin_refusals: bool = True
    # The installation's own Allow (--allow-target): for every namespace, like a policy rule
    # with cidrs (a policy's Deny still wins); what an installation without cluster-wide
    # permissions (no TcpMonitorPolicy can be read) has instead.
    allowed_networks: tuple[Network, ...] = ()

    def covering(self, labels: Mapping[str, str]) -> list[CompiledPolicy]:
        return [p for p in self.policies if selector_matches(p.selector, labels)]

    def decide(self, labels: Mapping[str, str], host: str, address: Address, port: int) -> Decision:
        address = plain_address(address)
        covering = self.covering(labels)
        allows: list[tuple[CompiledPolicy, CompiledRule]] = []
        for policy in covering:  # in name order: the first Deny named is stable
            rule = policy.first_match(host, address, port)
            if rule is None:
                continue
            if rule.action is PolicyAction.DENY:
                return Decision(False, f"{policy.name}/{rule.name}")
            allows.append((policy, rule))
        builtin = self._builtin_refusal(address)
        if builtin is not None:
            # Only a rule naming addresses lifts a built-in refusal: a name is no proof (a
            # tenant's headless Service can make *.svc.cluster.local resolve to 169.254.x).
            allows = [(p, r) for p, r in allows if r.networks]
        if allows:
            policy, rule = allows[0]
            record = all(r.record_responses for _, r in allows)
            return Decision(True, f"{policy.name}/{rule.name}", record)
        if any(address in net for net in self.allowed_networks):
            return Decision(True, ALLOW_TARGET)
        if builtin is not None:
            return Decision(False, f"{BUILTIN}/{builtin}")
        if covering:
            denying = next((p for p in covering if p.deny_by_default), None)
            if denying is not None:
                return Decision(False, f"{denying.name}/defaultAction")
            return Decision(True, f"{covering[0].name}/defaultAction")
        if self.deny_uncovered:
            return Decision(False, "default (no policy covers the namespace)")
        return Decision(True, "default")

    def _builtin_refusal(self, address: Address) -> str | None:
        if self.builtin_refusals:
            for name, networks in BUILTIN_REFUSALS:
                if any(address in net for net in networks):
                    return name
        return None

    def limits(self, labels: Mapping[str, str]) -> NamespaceLimits:
        covering = [p.limits for p in self.covering(labels)]
        if not covering:
            return NO_LIMITS
        max_monitors = _tightest([lim.max_monitors for lim in covering])
        concurrent = _tightest([lim.max_concurrent_probes for lim in covering])
        return NamespaceLimits(
            max_monitors=int(max_monitors) if max_monitors is not None else None,
            # The longest floor is the tightest.
            min_interval=_tightest([lim.min_interval for lim in covering], highest=True),
            max_concurrent_probes=int(concurrent) if concurrent is not None else None,
        )


def compile_policies(
    policies: Sequence[TcpMonitorPolicy],
    *,
    deny_uncovered: bool = False,
    builtin: bool = True,
    allowed: Sequence[str] = (),
) -> PolicySet:
    ordered = sorted(policies, key=lambda p: p.metadata.name)
    return PolicySet(
        tuple(CompiledPolicy.of(p) for p in ordered),
        deny_uncovered=deny_uncovered,
        builtin_refusals=builtin,
        allowed_networks=tuple(ipaddress.ip_network(c, strict=False) for c in allowed),
    )
