"""Secrets end to end: a payload, a client key and a CA read from Secrets by the operator (at
debug log level, text and JSON) appear in no log line, TcpMonitor object, Event or metric,
although the target echoes the payload back."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cases.secrets import EchoServer, SecretMaterial, echo_server
from tests.controlplane import Cluster

from .operator_process import (
    OperatorProcess,
    apply,
    condition,
    eventually,
    reasons,
    state_is,
    status,
    tcpmonitor,
)


def secret(namespace: str, name: str, data: dict[str, bytes], kind: str = "Opaque") -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": kind,
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def probed(server: EchoServer, times: int) -> bool:
    return server.connections >= times


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_leak_into_no_log_object_event_or_metric(
    control_plane: Cluster, namespace: str, tmp_path: Path, log_format: str
) -> None:
    m = SecretMaterial()
    send_from = {"secretKeyRef": {"name": "payload", "key": "data"}}
    tls = {
        "enabled": True,
        "caSecretRef": {"name": "ca", "key": "ca.crt"},
        "clientCertSecretRef": {"name": "client"},
    }
    matches = {"source": "ResponseData", "comparison": "Matches", "target": "LOGIN"}
    unequal = {"source": "ResponseData", "comparison": "Equals", "target": "something else"}
    operator = OperatorProcess(control_plane, tmp_path, "--log-format", log_format)
    try:
        with echo_server(m.server_context()) as mtls, echo_server() as plain:
            apply(
                control_plane,
                secret(namespace, "payload", {"data": m.payload}),
                secret(namespace, "ca", {"ca.crt": m.ca_pem}),
                secret(
                    namespace,
                    "client",
                    {"tls.crt": m.client_cert_pem, "tls.key": m.client_key_pem},
                    "kubernetes.io/tls",
                ),
                tcpmonitor(
                    namespace,
                    "mtls",
                    port=mtls.port,
                    tls=tls,
                    sendFrom=send_from,
                    assertions=[matches],
                ),
                tcpmonitor(
                    namespace, "plain", port=plain.port, sendFrom=send_from, assertions=[unequal]
                ),
                tcpmonitor(
                    namespace,
                    "no-key",
                    port=plain.port,
                    sendFrom={"secretKeyRef": {"name": "payload", "key": "other"}},
                ),
            )
            eventually(lambda: state_is(control_plane, namespace, "mtls", "Up"), 20, message="Up")
            eventually(
                lambda: state_is(control_plane, namespace, "plain", "Down"), 20, message="Down"
            )
            eventually(
                lambda: probed(mtls, 3) and probed(plain, 3), 20, message="three probes each"
            )
            eventually(
                lambda: "TargetDown" in reasons(control_plane, namespace, "plain"),
                10,
                message="TargetDown Event",
            )
            eventually(
                lambda: "InvalidSpec" in reasons(control_plane, namespace, "no-key"),
                10,
                message="InvalidSpec Event",
            )
            metrics = operator.metrics()
            mtls_status = status(control_plane, namespace, "mtls")
            operator.stop()  # before the targets go: what is grepped below is what they saw
    finally:
        operator.stop()

    # The test can fail: both targets got the payload and sent it all back, and the reply
    # the status describes was that long.
    token = m.token.encode()
    assert token in mtls.got and token in plain.got
    assert mtls_status["lastResult"]["tls"]["verified"] is True
    assert mtls_status["lastResult"]["response"]["bytes"] >= len(m.payload)
    ready = condition(status(control_plane, namespace, "no-key"), "Ready")
    assert ready["reason"] == "ReferenceNotFound"
    assert 'Secret "payload" key "other": not found or not readable' in ready["message"]

    log = operator.log_path.read_text()
    if log_format == "json":
        assert [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert "DEBUG" in log or '"level": "debug"' in log, "the operator logged at debug level"
    sinks = {
        "operator log": log,
        "tcpmonitors": control_plane.kubectl(
            "get", "tcpmonitors", "-n", namespace, "-o", "yaml", check=True
        ).stdout,
        "events": control_plane.kubectl(
            "get", "events.events.k8s.io", "-n", namespace, "-o", "yaml", check=True
        ).stdout,
        "core events": control_plane.kubectl(
            "get", "events", "-n", namespace, "-o", "yaml", check=True
        ).stdout,
        "metrics": metrics,
    }
    assert "lastResult" in sinks["tcpmonitors"] and "TargetDown" in sinks["events"]
    assert f'namespace="{namespace}"' in sinks["metrics"]
    leaks = {sink: m.leaks(text) for sink, text in sinks.items()}
    assert leaks == {sink: [] for sink in sinks}, leaks
