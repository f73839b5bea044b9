"""The engine against real loopback servers: each behaviour yields its own error code."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import replace

import pytest

from tcpmonitor.api import ErrorCode, TcpMonitorSpec, Verdict
from tcpmonitor.api.result import MAX_EXCERPT
from tcpmonitor.cli.render import render_result
from tcpmonitor.probe import ProbeMaterial, compile_plan, run_probe

from ..probing import contains, probe
from ..servers import close_at_once, closed_port, drip, echo, greet, reset_after, serve, silent


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_connect_only_probe_is_up_with_connect_timing_and_address() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(silent) as port:
            return port, await probe(port)

    port, result = run(scenario())
    assert result.state is Verdict.UP
    assert result.error is None
    assert result.remote_address == f"127.0.0.1:{port}"
    assert result.timings.dns is None  # IP literal: nothing resolved
    assert result.timings.connect is not None and result.timings.connect > 0
    assert result.timings.tls is None and result.timings.data is None
    assert result.timings.total >= result.timings.connect  # type: ignore[operator]


def test_closed_port_is_connection_refused() -> None:
    result = run(probe(closed_port()))
    assert result.state is Verdict.DOWN
    assert result.error is not None
    assert result.error.code == ErrorCode.CONNECTION_REFUSED
    assert "Connection refused" in result.error.message


def test_localhost_is_resolved_and_timed() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(silent) as port:
            return await probe(port, host="localhost", ipFamily="IPv4")

    result = run(scenario())
    assert result.state is Verdict.UP
    assert result.timings.dns is not None
    assert result.remote_address is not None and result.remote_address.startswith("127.0.0.1:")


def test_ipv6_literal_connects_over_ipv6() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(silent, host="::1") as port:
            return port, await probe(port, host="::1")

    port, result = run(scenario())
    assert result.state is Verdict.UP
    assert result.remote_address == f"[::1]:{port}"


def test_reserved_invalid_name_is_dns_not_found_without_asking_a_resolver() -> None:
    result = run(probe(80, host="no-such-host.invalid"))
    assert result.error is not None and result.error.code == ErrorCode.DNS_NOT_FOUND
    assert result.remote_address is None and result.timings.connect is None


def test_name_without_address_of_the_requested_family_is_dns_not_found() -> None:
    result = run(probe(80, host="localhost", ipFamily="IPv6"))
    if socket.has_ipv6 and result.state is Verdict.UP:
        pytest.skip("this machine maps localhost to ::1")
    assert result.error is not None
    assert result.error.code in (ErrorCode.DNS_NOT_FOUND, ErrorCode.CONNECTION_REFUSED)


def test_contains_assertion_passes_and_response_is_recorded() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(greet(b"220 smtp.example ESMTP\r\n")) as port:
            return await probe(port, assertions=[contains("ESMTP")])

    result = run(scenario())
    assert result.state is Verdict.UP, result
    assert result.response is not None and result.response.bytes == 24
    assert result.response.excerpt == "220 smtp.example ESMTP\\r\\n"
    assert [a.passed for a in result.assertions] == [True]
    # The read stopped as soon as the assertion was decided, not at the timeout.
    assert result.timings.data is not None and result.timings.data < 500


def test_payload_is_sent_byte_for_byte_and_echo_is_checked() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(echo) as port:
            return await probe(
                port,
                sendBase64="AAEC/w==",
                assertions=[
                    {"source": "ResponseData", "comparison": "Matches", "target": "^\x00\x01\x02"}
                ],
            )

    result = run(scenario())
    assert result.state is Verdict.UP, result.error
    assert result.response is not None and result.response.excerpt.startswith("\\x00\\x01\\x02")


def test_the_result_shows_what_was_sent_escaped_and_bounded() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(echo) as port:
            plain = await probe(port, sendBase64="AAEC/w==", assertions=[contains("\x00")])
            long = await probe(port, send="PING\r\n" + "x" * 1000, assertions=[contains("PING")])
            quiet = await probe(port)
            return plain, long, quiet

    plain, long, quiet = run(scenario())
    assert plain.request is not None
    assert (plain.request.bytes, plain.request.excerpt) == (4, "\\x00\\x01\\x02\\xff")
    assert plain.request.from_secret is False
    assert long.request is not None and long.request.bytes == 1006
    assert long.request.excerpt == ("PING\\r\\n" + "x" * 1000)[:MAX_EXCERPT]
    assert quiet.request is None  # nothing sent, nothing to show
    assert plain.to_json_dict()["request"] == {
        "bytes": 4,
        "excerpt": "\\x00\\x01\\x02\\xff",
        "fromSecret": False,
    }


def test_a_payload_from_a_secret_shows_its_size_never_its_bytes() -> None:
    secret = b"AUTH hunter2-top-secret\r\n"

    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(silent) as port:  # an echo would show it in the response
            return await probe(
                port,
                ProbeMaterial(payload=secret),
                sendFrom={"secretKeyRef": {"name": "s", "key": "payload"}},
            )

    result = run(scenario())
    assert result.state is Verdict.UP, result.error
    assert result.request is not None
    assert (result.request.bytes, result.request.excerpt, result.request.from_secret) == (
        len(secret),
        None,
        True,
    )
    dumped = json.dumps(result.to_json_dict())
    assert "hunter2" not in dumped and "AUTH" not in dumped
    shown = render_result(result, "ns/m")
    assert f"request    {len(secret)} bytes from a Secret" in shown


def test_failed_assertion_is_down_with_actual_value() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(echo) as port:
            return await probe(
                port, send="PING\r\n", timeout="500ms", assertions=[contains("PONG")]
            )

    result = run(scenario())
    assert result.state is Verdict.DOWN
    assert result.error is not None and result.error.code == ErrorCode.ASSERTION_FAILED
    assert result.assertions[0].actual == "PING\\r\\n"
    assert result.assertions[0].passed is False


def test_silent_server_is_read_timeout_within_the_deadline() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(silent) as port:
            started = time.perf_counter()
            result = await probe(port, timeout="300ms", assertions=[contains("x")])
            return result, time.perf_counter() - started

    result, elapsed = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.READ_TIMEOUT
    assert result.response is not None and result.response.bytes == 0
    assert 0.3 <= elapsed < 0.4


def test_slow_drip_is_read_until_the_assertion_is_decided() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(drip(b"hello world", 0.02)) as port:
            return await probe(port, assertions=[contains("world")])

    result = run(scenario())
    assert result.state is Verdict.UP, result.error
    assert result.timings.data is not None and 150 < result.timings.data < 1500


def test_slow_drip_cut_by_the_timeout_fails_with_the_partial_reply() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(drip(b"hello world", 0.1)) as port:
            started = time.perf_counter()
            result = await probe(port, timeout="350ms", assertions=[contains("world")])
            return result, time.perf_counter() - started

    result, elapsed = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.ASSERTION_FAILED
    assert result.response is not None and 1 <= result.response.bytes < 11
    assert elapsed < 0.35 + 0.1


def test_peer_closing_without_data_is_connection_closed() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(close_at_once) as port:
            return await probe(port, assertions=[contains("x")])

    result = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.CONNECTION_CLOSED


def test_peer_reset_is_connection_reset() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(reset_after(b"partial", 0.05)) as port:
            return await probe(port, assertions=[contains("complete")])

    result = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.CONNECTION_RESET


def test_negative_assertion_passes_when_time_runs_out_without_the_text() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(greet(b"OK\r\n")) as port:
            return await probe(
                port,
                timeout="300ms",
                assertions=[
                    {"source": "ResponseData", "comparison": "NotContains", "target": "ERROR"}
                ],
            )

    result = run(scenario())
    assert result.state is Verdict.UP, result.error


def test_max_response_time_turns_a_slow_success_down() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(drip(b"abc", 0.1)) as port:
            return await probe(port, maxResponseTime="100ms", assertions=[contains("c")])

    result = run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.RESPONSE_TIME_EXCEEDED


def test_degraded_response_time_is_a_warning_not_a_failure() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(drip(b"abc", 0.05)) as port:
            return await probe(port, degradedResponseTime="50ms", assertions=[contains("c")])

    result = run(scenario())
    assert result.state is Verdict.DEGRADED
    assert [w.code for w in result.warnings] == ["RESPONSE_TIME_DEGRADED"]


def test_response_time_assertion_is_evaluated_against_total() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(silent) as port:
            fast = await probe(
                port,
                assertions=[{"source": "ResponseTime", "comparison": "LessThan", "target": "1s"}],
            )
            slow = await probe(
                port,
                assertions=[
                    {"source": "ResponseTime", "comparison": "GreaterThan", "target": "1s"}
                ],
            )
            return fast, slow

    fast, slow = run(scenario())
    assert fast.state is Verdict.UP
    assert slow.error is not None and slow.error.code == ErrorCode.ASSERTION_FAILED
    assert slow.assertions[0].actual.endswith("ms")


def test_retries_give_a_flaky_target_another_chance() -> None:
    attempts = 0

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        writer.write(b"ready" if attempts > 1 else b"busy")
        await writer.drain()
        await asyncio.sleep(1)

    async def scenario():  # type: ignore[no-untyped-def]
        async with serve(flaky) as port:
            return await probe(port, retries=2, assertions=[contains("ready")])

    result = run(scenario())
    assert result.state is Verdict.UP
    assert attempts == 2


@pytest.mark.parametrize("timeout", ["200ms", "500ms"])
def test_probe_never_exceeds_its_timeout_by_more_than_100ms(timeout: str) -> None:
    """Every way of running into the deadline: silence, a drip, a TLS peer that never answers."""
    limit = float(timeout.removesuffix("ms")) / 1000

    async def timed(port: int, **spec: object) -> float:
        started = time.perf_counter()
        await probe(port, timeout=timeout, **spec)  # type: ignore[arg-type]
        return time.perf_counter() - started

    async def scenario() -> list[float]:
        async with serve(silent) as quiet, serve(drip(b"x" * 1000, 0.01)) as dripping:
            return [
                await timed(quiet, assertions=[contains("x")]),
                await timed(dripping, send="hi", assertions=[contains("never")]),
                await timed(quiet, tls={"enabled": True}),
            ]

    for elapsed in run(scenario()):
        assert limit - 0.01 <= elapsed < limit + 0.1


def test_retries_never_make_a_probe_overrun_its_interval() -> None:
    """Three re-tries of a 200 ms read timeout do not fit a 500 ms interval: one does."""
    dropped: list[int] = []

    async def scenario(port: int) -> tuple[float, Verdict]:
        spec = TcpMonitorSpec.model_validate(
            {
                "host": "127.0.0.1",
                "port": port,
                "timeout": "1s",
                "retries": 3,
                "assertions": [contains("hello")],
            }
        )
        plan = replace(compile_plan(spec), timeout=0.2, budget=0.5)
        began = time.monotonic()
        result = await run_probe(plan, retries_dropped=dropped.append)
        return time.monotonic() - began, result.state

    async def with_server() -> tuple[float, Verdict]:
        async with serve(silent) as port:
            return await scenario(port)

    took, state = run(with_server())
    assert state is Verdict.DOWN
    assert took < 0.5
    assert dropped == [2]  # two attempts ran (the probe and one re-try), two did not fit


def test_fast_failing_retries_all_run_within_the_interval() -> None:
    dropped: list[int] = []
    spec = TcpMonitorSpec.model_validate(
        {"host": "127.0.0.1", "port": closed_port(), "timeout": "1s", "retries": 3}
    )
    plan = replace(compile_plan(spec), timeout=0.2, budget=1.0)
    result = run(run_probe(plan, retries_dropped=dropped.append))
    assert result.error is not None and result.error.code == ErrorCode.CONNECTION_REFUSED
    assert dropped == []
