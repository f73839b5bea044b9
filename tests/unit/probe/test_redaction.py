"""A payload read from a Secret never comes back through what the probe shows of the reply."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from tcpmonitor.api import TcpMonitorSpec
from tcpmonitor.api.result import MAX_EXCERPT
from tcpmonitor.probe import ProbeMaterial, compile_plan, run_probe
from tcpmonitor.probe.excerpt import MIN_REDACTED, REDACTED, Redactor, printable_excerpt
from tcpmonitor.probe.tls import ClientCertificate

from ..probing import contains
from ..servers import Handler, serve

SECRET = b"AUTH s3cr3t-P4ss\r\n"


def redacted(data: bytes, *secrets: bytes, limit: int = MAX_EXCERPT) -> str:
    return Redactor.of(secrets or (SECRET,)).excerpt(data, limit)


def test_a_whole_echo_is_replaced_by_the_marker() -> None:
    assert redacted(b"+OK " + SECRET + b"bye\n") == f"+OK {REDACTED}bye\\n"


def test_a_token_of_the_secret_quoted_back_is_hidden() -> None:
    reply = b"-ERR unknown command 's3cr3t-P4ss', with args beginning with:\r\n"
    assert redacted(reply) == f"-ERR unknown command '{REDACTED}', with args beginning with:\\r\\n"


def test_a_secret_cut_by_the_excerpt_length_is_hidden_up_to_the_cut() -> None:
    for start in range(MAX_EXCERPT - len(SECRET), MAX_EXCERPT + 1):
        reply = b"." * start + SECRET + b"tail"
        excerpt = redacted(reply)
        assert len(excerpt) <= MAX_EXCERPT
        shown = excerpt.replace(REDACTED, "").replace("[REDACTE", "")
        assert "s3cr" not in shown and "P4ss" not in shown, (start, excerpt)
        assert excerpt.startswith("." * min(start, MAX_EXCERPT))


def test_a_reply_that_ends_inside_the_secret_is_hidden_too() -> None:
    assert redacted(b"got: " + SECRET[:9]) == f"got: {REDACTED}"
    assert redacted(SECRET[5:] + b" <- that") == f"{REDACTED} <- that"


def test_bytes_that_escape_are_redacted_before_escaping() -> None:
    secret = b"\x00\x01key\xff\xfe\r\n"
    excerpt = redacted(b"x" + secret + b"y", secret)
    assert excerpt == f"x{REDACTED}y"
    assert "\\x00\\x01" not in excerpt


def test_runs_shorter_than_the_minimum_are_shown() -> None:
    # "AUT" is in the secret but only three bytes long: hiding those would hide most replies.
    assert MIN_REDACTED == 4
    assert redacted(b"AUT OK\r\n") == "AUT OK\\r\\n"
    assert redacted(b"AUTH-OK") == f"{REDACTED}-OK"


def test_a_secret_shorter_than_the_minimum_is_not_redacted() -> None:
    assert not Redactor.of([b"abc"])
    assert Redactor.of([b"abc"]).excerpt(b"xabcx") == "xabcx"


def test_a_redacted_excerpt_is_never_longer_than_the_limit() -> None:
    reply = (b"\x01" + SECRET) * 200
    for limit in (1, 5, 10, 11, 40, 120, MAX_EXCERPT):
        excerpt = redacted(reply, limit=limit)
        assert len(excerpt) <= limit
        assert "s3cr" not in excerpt


def test_without_secrets_the_excerpt_is_the_plain_one() -> None:
    reply = b"hello\x00" * 100
    assert Redactor.of([]).excerpt(reply) == printable_excerpt(reply)


def test_text_taken_from_the_reply_is_redacted_in_its_decoded_and_escaped_forms() -> None:
    r = Redactor.of([SECRET])
    assert r.text("banner AUTH s3cr3t-P4ss\r\n!") == f"banner {REDACTED}!"
    assert r.text("quoted: AUTH s3cr3t-P4ss\\r\\n") == f"quoted: {REDACTED}"
    assert r.text("nothing here") == "nothing here"


def test_no_repr_shows_the_secret_or_a_client_key() -> None:
    material = ProbeMaterial(
        payload=SECRET,
        ca_pem="-----BEGIN CERTIFICATE-----CAPEM",
        client_certificate=ClientCertificate(b"CERTPEM", b"-----BEGIN PRIVATE KEY-----KEYPEM"),
    )
    spec = TcpMonitorSpec.model_validate(
        {"host": "127.0.0.1", "port": 1, "sendFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    )
    plan = compile_plan(spec, ProbeMaterial(payload=SECRET))
    for shown in (repr(material), repr(plan), str(plan), repr(material.client_certificate)):
        assert "s3cr3t" not in shown and "KEYPEM" not in shown and "CAPEM" not in shown


# On loopback: a server that repeats what it gets.


def recording_echo(received: list[bytes]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            received.append(data)
            writer.write(b"you said: " + data)
            await writer.drain()

    return handler


SEND_FROM = {"secretKeyRef": {"name": "payload", "key": "data"}}


async def probe_secret(port: int, payload: bytes = SECRET, **spec: Any) -> Any:
    full = {"host": "127.0.0.1", "port": port, "timeout": "2s", "sendFrom": SEND_FROM, **spec}
    plan = compile_plan(TcpMonitorSpec.model_validate(full), ProbeMaterial(payload=payload))
    return await run_probe(plan)


def test_an_echoed_secret_payload_shows_in_no_excerpt_actual_or_request() -> None:
    received: list[bytes] = []

    async def scenario() -> Any:
        async with serve(recording_echo(received)) as port:
            return await probe_secret(
                port,
                assertions=[
                    contains("you said"),
                    {"source": "ResponseData", "comparison": "Matches", "target": "P4ss"},
                    {"source": "ResponseData", "comparison": "Equals", "target": "nope"},
                ],
            )

    result = asyncio.run(scenario())
    # The target got the Secret and sent it back: what we show of its reply must not have it.
    assert SECRET in b"".join(received)
    assert result.response is not None and result.response.bytes == len(SECRET) + 10
    assert result.response.excerpt == f"you said: {REDACTED}"
    assert [a.actual for a in result.assertions] == [f"you said: {REDACTED}"] * 3
    # What remains: a Matches assertion still answers yes or no about the secret bytes.
    assert [a.passed for a in result.assertions] == [True, True, False]
    assert result.request is not None
    assert (result.request.from_secret, result.request.excerpt) == (True, None)
    assert result.request.bytes == len(SECRET)
    dumped = result.model_dump_json()
    assert "s3cr3t" not in dumped and "P4ss\\r" not in dumped


def test_a_payload_written_in_the_spec_is_shown_as_it_comes_back() -> None:
    async def scenario() -> Any:
        async with serve(recording_echo([])) as port:
            spec = {"host": "127.0.0.1", "port": port, "timeout": "2s", "send": "open sesame"}
            spec["assertions"] = [contains("sesame")]
            return await run_probe(compile_plan(TcpMonitorSpec.model_validate(spec)))

    result = asyncio.run(scenario())
    assert result.response is not None
    assert result.response.excerpt == "you said: open sesame"


@pytest.mark.parametrize("cut", [4, 9, 17])
def test_a_target_that_returns_part_of_the_secret_shows_none_of_it(cut: int) -> None:
    async def part(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(len(SECRET))
        writer.write(b"[" + data[1:cut] + b"]")
        await writer.drain()
        writer.close()

    async def scenario() -> Any:
        async with serve(part) as port:
            return await probe_secret(port, assertions=[contains("]")])

    result = asyncio.run(scenario())
    assert result.response is not None
    excerpt = result.response.excerpt
    returned = SECRET[1:cut].decode()
    assert excerpt == (f"[{REDACTED}]" if len(returned) >= MIN_REDACTED else f"[{returned}]")


def test_a_failure_message_that_quotes_the_reply_hides_the_secret() -> None:
    """The dialog path: a step's expect not met quotes what arrived, redacted (steps cannot
    read a Secret today; the plan's redactor covers them all the same)."""

    async def scenario() -> Any:
        async with serve(recording_echo([])) as port:
            spec = TcpMonitorSpec.model_validate(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "timeout": "1s",
                    "steps": [{"send": SECRET.decode(), "expect": "^never$"}],
                }
            )
            plan = dataclasses.replace(compile_plan(spec), redactor=Redactor.of([SECRET]))
            return await run_probe(plan)

    result = asyncio.run(scenario())
    assert result.error is not None
    assert REDACTED in result.error.message
    assert "s3cr3t" not in result.error.message, result.error.message
