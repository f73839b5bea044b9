"""`tcpmonitor probe -o json` over manifests whose Secrets hold a payload, a client key and a
CA: the JSON (and the table, and `validate`) show none of them, though the target echoes."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tcpmonitor.cli.main import main
from tests.cases.secrets import SecretMaterial, echo_server


def secret(name: str, data: dict[str, bytes]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "team-a"},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def tcpmonitor(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"host": "127.0.0.1", "interval": "1s", "timeout": "900ms", **spec},
    }


def manifests(m: SecretMaterial, mtls_port: int, plain_port: int) -> list[dict[str, object]]:
    send_from = {"secretKeyRef": {"name": "payload", "key": "data"}}
    matches = {"source": "ResponseData", "comparison": "Matches", "target": "LOGIN"}
    unequal = {"source": "ResponseData", "comparison": "Equals", "target": "something else"}
    tls = {
        "enabled": True,
        "caSecretRef": {"name": "ca", "key": "ca.crt"},
        "clientCertSecretRef": {"name": "client"},
    }
    return [
        secret("payload", {"data": m.payload}),
        secret("ca", {"ca.crt": m.ca_pem}),
        secret("client", {"tls.crt": m.client_cert_pem, "tls.key": m.client_key_pem}),
        tcpmonitor("mtls", port=mtls_port, tls=tls, sendFrom=send_from, assertions=[matches]),
        tcpmonitor("plain", port=plain_port, sendFrom=send_from, assertions=[unequal]),
    ]


def test_probe_output_shows_no_secret_although_the_target_echoes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = SecretMaterial()
    with echo_server(m.server_context()) as mtls, echo_server() as plain:
        documents = manifests(m, mtls.port, plain.port)
        (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(documents))
        outputs = {}
        for output in ("json", "table"):
            code = main(["probe", "-f", str(tmp_path), "-o", output])
            captured = capsys.readouterr()
            outputs[output] = captured.out + captured.err
            assert code == 1  # plain is Down: its reply is not "something else"
        missing = {"secretKeyRef": {"name": "payload", "key": "other"}}
        no_key = tcpmonitor("no-key", port=1, sendFrom=missing)
        (tmp_path / "m.yaml").write_text(yaml.safe_dump_all([*documents[:3], no_key]))
        assert main(["validate", str(tmp_path)]) == 1
        outputs["validate"] = "".join(capsys.readouterr())
        # The same key and CA as files, ad hoc.
        files = {"ca": m.ca_pem, "cert": m.client_cert_pem, "key": m.client_key_pem}
        for name, data in files.items():
            (tmp_path / f"{name}.pem").write_bytes(data)
        code = main(
            [
                "probe",
                f"127.0.0.1:{mtls.port}",
                *(f"--{name}={tmp_path / f'{name}.pem'}" for name in files),
                "--send",
                "hello",
                "-o",
                "json",
            ]
        )
        outputs["ad hoc"] = "".join(capsys.readouterr())
        assert code == 0, outputs["ad hoc"]

    # The test can fail: the targets got the payload and sent it back.
    assert m.token.encode() in mtls.got and m.token.encode() in plain.got
    results = {r["name"]: r for r in json.loads(outputs["json"])}
    assert results["mtls"]["state"] == "Up"
    assert results["mtls"]["tls"]["verified"] is True
    assert results["plain"]["response"]["bytes"] == len(m.payload)
    request = {"bytes": len(m.payload), "excerpt": None, "fromSecret": True}
    assert results["plain"]["request"] == request
    leaks = {name: m.leaks(text) for name, text in outputs.items()}
    assert leaks == {name: [] for name in outputs}, leaks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_run_at_debug_level_logs_and_serves_no_secret(tmp_path: Path, log_format: str) -> None:
    """`tcpmonitor run`: its Event lines, its debug log and its /metrics."""
    m = SecretMaterial()
    port = free_port()
    with echo_server(m.server_context()) as mtls, echo_server() as plain:
        (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(manifests(m, mtls.port, plain.port)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = subprocess.Popen(
            [
                *(sys.executable, "-m", "tcpmonitor", "run", "-f", str(tmp_path)),
                *("--metrics-port", str(port), "--log-level", "debug"),
                *("--log-format", log_format),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            for _ in range(100):  # ten seconds at most
                if mtls.connections >= 2 and plain.connections >= 2:
                    break
                time.sleep(0.1)
            time.sleep(0.3)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
        finally:
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=15)
    assert m.token.encode() in mtls.got and m.token.encode() in plain.got
    assert "TargetDown" in out and "TargetUp" in out, out
    assert err.strip(), "nothing was logged at debug level"
    assert "tcpmonitor_probe_success" in metrics
    sinks = {"stdout": out, "log": err, "metrics": metrics}
    leaks = {name: m.leaks(text) for name, text in sinks.items()}
    assert leaks == {name: [] for name in sinks}, leaks
