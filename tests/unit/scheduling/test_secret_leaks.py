"""A payload, a client key and a CA from Secrets appear in no log line (debug, text and JSON),
status, Event or metric, although the target echoes the payload back."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import generate_latest

from tcpmonitor.api import MonitorState
from tcpmonitor.cli.logging_setup import JsonFormatter
from tcpmonitor.reporting import status_body
from tcpmonitor.scheduling.runtime import MonitorRuntime, RuntimeSettings
from tcpmonitor.telemetry.metrics import Metrics
from tests.cases.secrets import SecretMaterial

from ..servers import Handler, serve
from .test_runtime import DictResolver, MemoryReporter, monitor

NS = "ns"


def recording_echo(received: list[bytes]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(64):
            data = await reader.read(4096)
            if not data:
                return
            received.append(data)
            writer.write(data)
            await writer.drain()

    return handler


@contextmanager
def debug_logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Every record at DEBUG, as `--log-format text` and `--log-format json` write it."""
    text, js = io.StringIO(), io.StringIO()
    text_handler = logging.StreamHandler(text)
    text_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    json_handler = logging.StreamHandler(js)
    json_handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.level
    root.addHandler(text_handler)
    root.addHandler(json_handler)
    root.setLevel(logging.DEBUG)
    try:
        yield text, js
    finally:
        root.removeHandler(text_handler)
        root.removeHandler(json_handler)
        root.setLevel(saved)


def test_secrets_appear_in_no_log_status_event_or_metric() -> None:
    material = SecretMaterial()
    reporter = MemoryReporter()
    resolver = DictResolver()
    resolver.secrets[(NS, "payload")] = {"data": material.payload}
    resolver.secrets[(NS, "ca")] = {"ca.crt": material.ca_pem}
    resolver.secrets[(NS, "client")] = {
        "tls.crt": material.client_cert_pem,
        "tls.key": material.client_key_pem,
    }
    received: list[bytes] = []
    tls = {
        "enabled": True,
        "caSecretRef": {"name": "ca", "key": "ca.crt"},
        "clientCertSecretRef": {"name": "client"},
    }
    send_from = {"secretKeyRef": {"name": "payload", "key": "data"}}
    matches = {"source": "ResponseData", "comparison": "Matches", "target": "s3cr3t-[0-9a-f]+"}
    unequal = {"source": "ResponseData", "comparison": "Equals", "target": "something else"}
    metrics = Metrics()

    async def scenario() -> None:
        rt = MonitorRuntime(reporter, resolver, metrics, RuntimeSettings(problem_retry=0.2))
        async with (
            serve(recording_echo(received), ssl_context=material.server_context()) as tls_port,
            serve(recording_echo(received)) as plain_port,
        ):
            for m in (
                # Up: mutual TLS with the CA and client key from Secrets, the payload echoed.
                monitor("mtls", port=tls_port, tls=tls, sendFrom=send_from, assertions=[matches]),
                # Down: the echo fails an assertion, so its error, Event and actual are built.
                monitor("plain", port=plain_port, sendFrom=send_from, assertions=[unequal]),
                # Ready=False: a key the Secret does not have.
                monitor(
                    "no-key",
                    port=plain_port,
                    sendFrom={"secretKeyRef": {"name": "payload", "key": "other"}},
                ),
            ):
                await rt.apply(m)
            await asyncio.sleep(2.3)
            await rt.close()

    with debug_logs() as (text_log, json_log):
        asyncio.run(scenario())

    # The test can fail: the targets got the payload and sent it back, and probes ran.
    assert material.token.encode() in b"".join(received)
    assert reporter.last("mtls").state is MonitorState.UP
    assert reporter.last("plain").state is MonitorState.DOWN
    result = reporter.last("mtls").last_result
    assert result is not None and result.response is not None
    assert result.response.bytes >= len(material.payload)
    assert result.tls is not None and result.tls.verified

    statuses = [json.dumps(status_body(s)) for _, s, _ in reporter.writes]
    events = [f"{e.type} {e.reason} {e.message}" for _, e in reporter.events]
    assert any("InvalidSpec" in e for e in events) and any("TargetDown" in e for e in events)
    sinks = {
        "text log": text_log.getvalue(),
        "json log": json_log.getvalue(),
        "status": "\n".join(statuses),
        "events": "\n".join(events),
        "metrics": generate_latest(metrics.registry).decode(),
    }
    assert sinks["text log"] and sinks["json log"], "nothing was logged at DEBUG"
    assert "tcpmonitor_" in sinks["metrics"]
    leaks = {sink: material.leaks(text) for sink, text in sinks.items()}
    assert leaks == {sink: [] for sink in sinks}, leaks
