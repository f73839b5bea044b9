"""The target policy in the engine: asked on the exact address, before the SYN, every time."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tcpmonitor.api import ErrorCode, TcpMonitorSpec, Verdict
from tcpmonitor.policy import PolicyBook
from tcpmonitor.probe import compile_plan, run_probe

from ..policy.test_targets import policy
from ..probing import contains


@dataclasses.dataclass
class Counter:
    port: int
    accepted: int = 0


@asynccontextmanager
async def counting_listener(host: str = "127.0.0.1") -> AsyncIterator[Counter]:
    """A listener that counts the connections it accepts and says hello on each."""
    counter = Counter(0)

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counter.accepted += 1
        writer.write(b"hello secret-banner\r\n")
        try:
            await writer.drain()
            await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    counter.port = server.sockets[0].getsockname()[1]
    try:
        yield counter
    finally:
        server.close()


async def probe_with(book: PolicyBook | None, port: int, namespace: str = "team", **spec: Any):  # type: ignore[no-untyped-def]
    spec.setdefault("host", "127.0.0.1")
    spec.setdefault("timeout", "2s")
    plan = compile_plan(TcpMonitorSpec.model_validate({"port": port, **spec}))
    if book is not None:
        plan = dataclasses.replace(plan, guard=book.guard(namespace))
    return await run_probe(plan)


async def _without_a_guard_the_listener_sees_the_connection() -> None:
    async with counting_listener() as target:
        result = await probe_with(None, target.port)
        await asyncio.sleep(0.05)
    assert result.state is Verdict.UP
    assert target.accepted == 1  # the counter works: the refusals below are real


async def _a_refused_address_never_sees_a_syn() -> None:
    book = PolicyBook()  # built-in refusals: the runner's own loopback
    async with counting_listener() as target:
        result = await probe_with(book, target.port)
        await asyncio.sleep(0.05)
    assert target.accepted == 0
    assert result.state is Verdict.DOWN
    assert result.error is not None
    assert result.error.code == ErrorCode.TARGET_FORBIDDEN
    assert "refused by builtin/loopback" in result.error.message
    assert result.remote_address == f"127.0.0.1:{target.port}"


async def _a_name_resolving_to_a_refused_address_gains_nothing() -> None:
    book = PolicyBook()
    book.put_policy(
        policy("p", rules=[{"name": "by-name", "action": "Allow", "hosts": ["localhost"]}])
    )
    async with counting_listener() as target:
        result = await probe_with(book, target.port, host="localhost")
        await asyncio.sleep(0.05)
    assert target.accepted == 0
    assert result.error is not None
    assert result.error.code == ErrorCode.TARGET_FORBIDDEN
    assert result.timings.dns is not None  # refused after resolution, on the address


async def _a_policy_change_acts_on_the_next_probe() -> None:
    book = PolicyBook()
    async with counting_listener() as target:
        refused = await probe_with(book, target.port)
        book.put_policy(
            policy("lo", rules=[{"name": "lo", "action": "Allow", "cidrs": ["127.0.0.1/32"]}])
        )
        allowed = await probe_with(book, target.port)
        book.put_policy(
            policy("zz", rules=[{"name": "no", "action": "Deny", "ports": [str(target.port)]}])
        )
        denied = await probe_with(book, target.port)
        await asyncio.sleep(0.05)
    assert [refused.state, allowed.state, denied.state] == [Verdict.DOWN, Verdict.UP, Verdict.DOWN]
    assert denied.error is not None
    assert "refused by zz/no" in denied.error.message
    assert target.accepted == 1


async def _record_responses_false_keeps_verdicts_but_not_the_reply() -> None:
    book = PolicyBook()
    book.put_policy(
        policy(
            "lo",
            rules=[
                {
                    "name": "quiet",
                    "action": "Allow",
                    "cidrs": ["127.0.0.0/8"],
                    "recordResponses": False,
                }
            ],
        )
    )
    async with counting_listener() as target:
        kept = await probe_with(None, target.port, assertions=[contains("banner")])
        withheld = await probe_with(book, target.port, assertions=[contains("banner")])
    assert kept.response is not None and "secret-banner" in kept.response.excerpt
    assert withheld.state is Verdict.UP
    assert withheld.response is not None
    assert withheld.response.bytes == kept.response.bytes
    assert withheld.response.excerpt == ""
    assert [a.passed for a in withheld.assertions] == [True]
    assert all(a.actual is None for a in withheld.assertions)
    assert "hello" in kept.model_dump_json()
    assert "hello" not in withheld.model_dump_json()


def test_without_a_guard_the_listener_sees_the_connection() -> None:
    asyncio.run(_without_a_guard_the_listener_sees_the_connection())


def test_a_refused_address_never_sees_a_syn() -> None:
    asyncio.run(_a_refused_address_never_sees_a_syn())


def test_a_name_resolving_to_a_refused_address_gains_nothing() -> None:
    asyncio.run(_a_name_resolving_to_a_refused_address_gains_nothing())


def test_a_policy_change_acts_on_the_next_probe() -> None:
    asyncio.run(_a_policy_change_acts_on_the_next_probe())


def test_record_responses_false_keeps_verdicts_but_not_the_reply() -> None:
    asyncio.run(_record_responses_false_keeps_verdicts_but_not_the_reply())
