"""spec.steps: a dialog of send / expect / startTLS against scripted servers, with each step's
time in the result and the failing step named by index with what was read."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import trustme

from tcpmonitor.api import ErrorCode, ProbeResult, Verdict
from tcpmonitor.probe import ProbeMaterial

from ..probing import contains, probe
from ..servers import Handler, serve
from . import protocol_servers as servers


def run(handler: Handler, material: ProbeMaterial | None = None, **spec: Any) -> ProbeResult:
    async def scenario() -> ProbeResult:
        async with serve(handler) as port:
            return await probe(port, material, **spec)

    return asyncio.run(scenario())


SMTP_STEPS = [
    {"expect": "^220 "},
    {"send": "EHLO [127.0.0.1]\r\n", "expect": "(?m)^250 "},
    {"send": "QUIT\r\n", "expect": "^221 "},
]


def test_steps_run_in_order_and_each_is_timed() -> None:
    result = run(servers.smtp(), steps=SMTP_STEPS)
    assert result.state is Verdict.UP, result.error
    assert [s.passed for s in result.steps] == [True, True, True]
    assert all(s.time >= 0 for s in result.steps)
    assert result.protocol is None
    assert result.response is not None and "221 2.0.0 Bye" in result.response.excerpt


def test_a_step_whose_expect_does_not_match_is_named_with_what_was_read() -> None:
    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.test ESMTP\r\n")
        await reader.readline()
        writer.write(b"554 5.7.1 go away\r\n")
        await writer.drain()
        await asyncio.sleep(2)

    result = run(refusing, steps=SMTP_STEPS, timeout="500ms")
    assert result.error is not None and result.error.code == ErrorCode.PROTOCOL_ERROR
    message = result.error.message
    assert message.startswith('steps[1]: expected "(?m)^250 " within '), message
    assert message.endswith('s, got "554 5.7.1 go away\\r\\n"'), message
    assert [s.passed for s in result.steps] == [True, False]
    assert result.steps[1].time >= 400  # it waited to the end of the timeout


def test_a_step_that_sees_a_close_says_so() -> None:
    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\r\n")
        await reader.readline()

    result = run(hangs_up, steps=SMTP_STEPS)
    assert result.error is not None and result.error.code == ErrorCode.CONNECTION_CLOSED
    assert result.error.message.startswith('steps[1]: expected "(?m)^250 ", but the peer closed')


def test_send_base64_goes_out_byte_for_byte_with_nothing_appended() -> None:
    received: list[bytes] = []

    async def recorder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One small write arrives in one read on loopback: anything appended would be here.
        received.append(await reader.read(100))
        writer.write(b"+OK\r\n")
        await writer.drain()

    payload = base64.b64encode(b"\x00\xff\r\x01").decode()
    result = run(recorder, steps=[{"sendBase64": payload, "expect": r"^\+OK"}])
    assert result.state is Verdict.UP, result.error
    assert received == [b"\x00\xff\r\x01"]


def test_assertions_apply_to_everything_the_steps_read() -> None:
    ok = run(servers.smtp(), steps=SMTP_STEPS, assertions=[contains("PIPELINING")])
    assert ok.state is Verdict.UP, ok.error
    failed = run(servers.smtp(), steps=SMTP_STEPS, assertions=[contains("SMTPUTF8")])
    assert failed.error is not None and failed.error.code == ErrorCode.ASSERTION_FAILED


def test_a_starttls_step_upgrades_and_reports_that_certificate(
    ca: trustme.CA, server_context: Any
) -> None:
    steps = [
        {"expect": "^220 "},
        {"send": "EHLO [127.0.0.1]\r\n", "expect": "(?m)^250 "},
        {"send": "STARTTLS\r\n", "expect": "^220 ", "startTLS": True},
        {"send": "EHLO [127.0.0.1]\r\n", "expect": "(?m)^250 "},
        {"send": "QUIT\r\n"},
    ]
    material = ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode())
    context = server_context("mail.test")
    tls = {"enabled": True, "serverName": "mail.test"}
    result = run(servers.smtp(context), material, steps=steps, tls=tls)
    assert result.state is Verdict.UP, result.error
    assert len(result.steps) == 5
    assert result.tls is not None and result.tls.verified
    assert result.tls.certificate is not None
    assert result.tls.certificate.dns_names == ["mail.test"]
    assert result.timings.tls is not None


def test_a_failed_starttls_step_is_named() -> None:
    steps = [{"expect": "^220 "}, {"send": "EHLO x\r\n", "startTLS": True}]
    result = run(
        servers.smtp(),
        steps=steps,
        tls={"enabled": True, "insecureSkipVerify": True},
        timeout="1s",
    )
    assert result.state is Verdict.DOWN
    assert result.error is not None and result.error.message.startswith("steps[1]: ")
    assert [s.passed for s in result.steps] == [True, False]
