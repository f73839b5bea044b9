"""The policies and namespace labels in force in this process, swapped whole on every change.

Probes ask through a :class:`TargetGuard` bound to their namespace at the moment they connect,
so a policy change acts on the very next connection, with no plan recompiled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..api.policy import TcpMonitorPolicy
from .targets import Address, Decision, NamespaceLimits, PolicySet, compile_policies

MAX_NAMESPACES = 100_000


class PolicyBook:
    def __init__(
        self, *, deny_uncovered: bool = False, builtin: bool = True, allowed: Sequence[str] = ()
    ) -> None:
        self._deny_uncovered = deny_uncovered
        self._builtin = builtin
        self._allowed = tuple(allowed)
        self._policies: dict[str, TcpMonitorPolicy] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self.current: PolicySet = compile_policies(
            [], deny_uncovered=deny_uncovered, builtin=builtin, allowed=self._allowed
        )
        self._listeners: list[Callable[[], None]] = []
        # The scheduler asks for limits on every slot hand-out: computed once per namespace.
        self._limits: dict[str, NamespaceLimits] = {}

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener`` hears every change (e.g. to re-apply namespace limits)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self._limits.clear()
        self.current = compile_policies(
            list(self._policies.values()),
            deny_uncovered=self._deny_uncovered,
            builtin=self._builtin,
            allowed=self._allowed,
        )
        for listener in self._listeners:
            listener()

    def replace_policies(self, policies: list[TcpMonitorPolicy]) -> None:
        self._policies = {p.metadata.name: p for p in policies}
        self._changed()

    def put_policy(self, policy: TcpMonitorPolicy) -> None:
        if self._policies.get(policy.metadata.name) != policy:
            self._policies[policy.metadata.name] = policy
            self._changed()

    def drop_policy(self, name: str) -> None:
        if self._policies.pop(name, None) is not None:
            self._changed()

    @property
    def policy_names(self) -> list[str]:
        return sorted(self._policies)

    def knows_namespace(self, namespace: str) -> bool:
        return namespace in self._labels

    def put_namespace(self, namespace: str, labels: Mapping[str, str]) -> None:
        labels = dict(labels)
        if self._labels.get(namespace) == labels:
            return
        if namespace not in self._labels and len(self._labels) >= MAX_NAMESPACES:
            return  # bounded; an unknown namespace is judged by its name label only
        self._labels[namespace] = labels
        if self._policies:
            self._changed()

    def drop_namespace(self, namespace: str) -> None:
        self._labels.pop(namespace, None)
        self._limits.pop(namespace, None)

    def labels(self, namespace: str) -> Mapping[str, str]:
        known = self._labels.get(namespace)
        if known is not None:
            return known
        # The API server gives every namespace this label; selectors on it work before the
        # namespace itself has been seen.
        return {"kubernetes.io/metadata.name": namespace}

    def decide(self, namespace: str, host: str, address: Address, port: int) -> Decision:
        return self.current.decide(self.labels(namespace), host, address, port)

    def limits(self, namespace: str) -> NamespaceLimits:
        found = self._limits.get(namespace)
        if found is None:
            found = self.current.limits(self.labels(namespace))
            if len(self._limits) < MAX_NAMESPACES:
                self._limits[namespace] = found
        return found

    def guard(self, namespace: str) -> TargetGuard:
        return TargetGuard(self, namespace)


@dataclass(frozen=True)
class TargetGuard:
    """What one monitor's probe asks before each connection."""

    book: PolicyBook
    namespace: str

    def check(self, host: str, address: Address, port: int) -> Decision:
        return self.book.decide(self.namespace, host, address, port)
