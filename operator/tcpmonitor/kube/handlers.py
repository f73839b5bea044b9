"""The kopf handlers: translate watch events into calls on a sink, nothing else.

Only a raw ``on.event`` handler: no create/update/delete handlers means kopf keeps no progress
or diff-base state, adds no finalizer and writes nothing into our objects; the sink (runtime,
controller or runner shard) is the only writer, and only of ``status``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import kopf
from pydantic import ValidationError

from .. import GROUP, PLURAL, VERSION
from ..api import TcpMonitor
from ..api.policy import POLICY_PLURAL
from ..api.result import MAX_MESSAGE
from ..api.rules import STORED
from ..api.validation_messages import validation_problems
from ..policy import PolicyBook
from ..scheduling.runtime import Key, MonitorRef
from .api_client import connection_info
from .policy_source import parse_policy

log = logging.getLogger(__name__)


class MonitorSink(Protocol):
    async def apply(self, monitor: TcpMonitor) -> None: ...

    def remove(self, key: Key) -> None: ...

    def invalid(self, ref: MonitorRef, message: str) -> None: ...


def parse_monitor(body: dict[str, Any]) -> TcpMonitor:
    """The object as the sink needs it; a status we cannot read is ignored, not fatal."""
    obj = {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec", "status")}
    stored = {STORED: True}  # bounds added since it was written are the runtime's to report
    try:
        return TcpMonitor.model_validate(obj, context=stored)
    except ValidationError:
        if obj.get("status") is None:
            raise
        obj["status"] = None
        return TcpMonitor.model_validate(obj, context=stored)


def build_registry(
    sink: MonitorSink,
    policy: PolicyBook | None = None,
    learn_namespace: Callable[[str], Awaitable[None]] | None = None,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    if policy is not None:
        _register_policy_handlers(registry, policy)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def on_event(**kwargs: Any) -> None:
        body: dict[str, Any] = dict(kwargs["body"])
        meta = body.get("metadata", {})
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if kwargs["type"] == "DELETED":
            sink.remove(key)
            return
        try:
            monitor = parse_monitor(body)
        except ValidationError as exc:
            # The API server's schema should make this impossible; an older CRD might not.
            problems = "; ".join(f"{p.field}: {p.message}" for p in validation_problems(exc, "", 0))
            log.warning("TcpMonitor %s/%s is invalid: %s", *key, problems)
            sink.remove(key)
            sink.invalid(MonitorRef(key[0], key[1], meta.get("uid")), problems[:MAX_MESSAGE])
            return
        if learn_namespace is not None:
            await learn_namespace(key[0])
        await sink.apply(monitor)

    return registry


def _register_policy_handlers(registry: kopf.OperatorRegistry, policy: PolicyBook) -> None:
    """Policies and namespace labels: a change acts on the next connection of every probe."""

    @kopf.on.event(GROUP, VERSION, POLICY_PLURAL, registry=registry)
    async def on_policy(**kwargs: Any) -> None:
        body: dict[str, Any] = dict(kwargs["body"])
        name = str(body.get("metadata", {}).get("name"))
        if kwargs["type"] == "DELETED":
            policy.drop_policy(name)
        else:
            policy.put_policy(parse_policy(body))
        log.info("target policy now: %s", ", ".join(policy.policy_names) or "none")

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def on_namespace(**kwargs: Any) -> None:
        meta = dict(kwargs["body"].get("metadata", {}))
        name = str(meta.get("name"))
        if kwargs["type"] == "DELETED":
            policy.drop_namespace(name)
        else:
            policy.put_namespace(name, dict(meta.get("labels") or {}))
