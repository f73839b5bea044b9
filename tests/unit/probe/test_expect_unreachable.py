"""spec.expect: Unreachable, the proof that a NetworkPolicy or firewall holds."""

from __future__ import annotations

import asyncio

from tcpmonitor.api import ErrorCode, ProbeResult, Verdict

from ..probing import probe
from ..servers import closed_port, greet, serve


def test_refused_is_up() -> None:
    result = asyncio.run(probe(closed_port(), expect="Unreachable"))
    assert result.state is Verdict.UP
    assert result.error is None
    assert result.timings.connect is not None


def test_accepted_is_down_unexpectedly_reachable() -> None:
    async def scenario() -> ProbeResult:
        async with serve(greet(b"hello\n")) as port:
            return await probe(port, expect="Unreachable")

    result = asyncio.run(scenario())
    assert result.state is Verdict.DOWN
    assert result.error is not None
    assert result.error.code == ErrorCode.UNEXPECTEDLY_REACHABLE
    assert "accepted the connection" in result.error.message
    assert result.remote_address is not None


def test_reachable_is_the_default_and_refused_stays_down() -> None:
    result = asyncio.run(probe(closed_port()))
    assert result.error is not None and result.error.code == ErrorCode.CONNECTION_REFUSED


def test_dns_failure_is_not_proof_of_unreachability() -> None:
    result = asyncio.run(probe(80, host="nothing.invalid", expect="Unreachable"))
    assert result.state is Verdict.DOWN
    assert result.error is not None and result.error.code == ErrorCode.DNS_NOT_FOUND


def test_response_time_limits_do_not_turn_a_timeout_down() -> None:
    """A filtered port answers nothing: the probe waits its whole timeout, which is the
    expected outcome and must not trip maxResponseTime."""
    result = asyncio.run(
        probe(closed_port(), expect="Unreachable", maxResponseTime="20ms", timeout="1s")
    )
    assert result.state is Verdict.UP
