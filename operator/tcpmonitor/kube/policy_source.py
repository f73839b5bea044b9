"""TcpMonitorPolicies and namespace labels from the API server into the process's PolicyBook.

Read once before the watch of TcpMonitors starts (no monitor is probed under a policy not yet
known), then kept current by kopf watch handlers (``build_registry``); a namespace first seen
through one of its monitors is read on the spot, so a selector on a label of a namespace
created a moment ago applies to its first probe.

A policy the operator cannot parse is not skipped, since skipping a Deny would open what it
closes: it stands in as a policy that covers every namespace and refuses what no other policy
allows, named so that TARGET_FORBIDDEN messages point at it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypedDict

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from .. import GROUP, VERSION
from ..api.policy import POLICY_PLURAL, TcpMonitorPolicy
from ..api.rules import STORED
from ..api.validation_messages import validation_problems
from ..policy import PolicyBook
from .api_client import KubeApi, classify_api_error, describe_api_error

log = logging.getLogger(__name__)

_RETRY = (0.5, 1.0, 2.0, 5.0)


def parse_policy(body: dict[str, Any]) -> TcpMonitorPolicy:
    """The object as a policy; an invalid one becomes a deny-by-default stand-in (see above)."""
    obj = {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
    try:
        return TcpMonitorPolicy.model_validate(obj, context={STORED: True})
    except ValidationError as exc:
        name = str((body.get("metadata") or {}).get("name") or "unnamed")
        problems = "; ".join(f"{p.field}: {p.message}" for p in validation_problems(exc, "", 0))
        log.error(
            "TcpMonitorPolicy %s is invalid, it refuses what others do not allow: %s",
            name,
            problems,
        )
        return TcpMonitorPolicy.model_validate(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TcpMonitorPolicy",
                "metadata": {"name": name},
                "spec": {"defaultAction": "Deny"},
            }
        )


async def _with_retries(api: KubeApi, what: str, fn: Any, **kwargs: Any) -> Any:
    """Until it succeeds: probing under an unknown policy is what this read prevents."""
    attempt = 0
    while True:
        try:
            return await api.call(fn, **kwargs)
        except Exception as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                raise
            pause = _RETRY[min(attempt, len(_RETRY) - 1)]
            attempt += 1
            log.warning(
                "reading %s failed (%s), again in %gs: %s",
                what,
                classify_api_error(exc),
                pause,
                describe_api_error(exc),
            )
            await asyncio.sleep(pause)


async def load_policies(api: KubeApi, book: PolicyBook) -> None:
    try:
        listing = await _with_retries(
            api,
            "TcpMonitorPolicies",
            api.custom.list_cluster_custom_object,
            group=GROUP,
            version=VERSION,
            plural=POLICY_PLURAL,
        )
    except ApiException:  # 404: the CRD is not installed (an older chart): no policies
        log.warning("the TcpMonitorPolicy CRD is not installed: only the built-in refusals apply")
        listing = {"items": []}
    book.replace_policies([parse_policy(item) for item in listing.get("items", [])])
    namespaces = await _with_retries(api, "namespaces", api.core.list_namespace)
    for item in namespaces.items:
        book.put_namespace(item.metadata.name, item.metadata.labels or {})
    log.info(
        "target policy: %s; %d namespaces",
        ", ".join(book.policy_names) or "no TcpMonitorPolicy (built-in refusals only)",
        len(namespaces.items),
    )


async def learn_namespace(api: KubeApi, book: PolicyBook, namespace: str) -> None:
    """Read a namespace not seen yet; on failure its name label still applies."""
    if book.knows_namespace(namespace):
        return
    try:
        # A list by name rather than a get: the same permission as the initial list and watch.
        found = await api.call(api.core.list_namespace, field_selector=f"metadata.name={namespace}")
    except Exception as exc:
        log.warning("reading namespace %s failed: %s", namespace, describe_api_error(exc))
        return
    for ns in found.items:
        book.put_namespace(namespace, (ns.metadata.labels if ns.metadata else None) or {})


class PolicyHooks(TypedDict):
    prepare: Callable[[], Coroutine[Any, Any, None]] | None
    learn_namespace: Callable[[str], Awaitable[None]] | None


def policy_hooks(api: KubeApi, book: PolicyBook | None) -> PolicyHooks:
    """What ``run_watching`` needs to keep ``book`` current; nothing without a book."""
    if book is None:
        return {"prepare": None, "learn_namespace": None}
    return {
        "prepare": lambda: load_policies(api, book),
        "learn_namespace": lambda namespace: learn_namespace(api, book, namespace),
    }
