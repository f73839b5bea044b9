"""The command line, in process and through the installed console script."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
import yaml

from tcpmonitor.api.crd import render_crd_yaml
from tcpmonitor.cli import main
from tcpmonitor.cli.arguments import parse_target, unescape
from tcpmonitor.cli.run_command import add_runtime_options, runtime_settings

from ..probe.protocol_servers import BlockingScript, serve_blocking
from ..servers import blocking_tls_server, closed_port


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(2)
        data = self.request.recv(4096)
        self.request.sendall(b"echo:" + data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_probe_up_prints_a_table_and_exits_0(
    echo_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["probe", f"127.0.0.1:{echo_port}", "--send", r"hi\x00\n", "--expect", "echo:hi"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == f"127.0.0.1:{echo_port}  Up"
    assert r'response   9 bytes "echo:hi\x00\n"' in out
    assert 'assert     ResponseData Contains "echo:hi": passed' in out


def test_probe_down_exits_1_and_json_carries_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["probe", f"127.0.0.1:{closed_port()}", "-o", "json"])
    [result] = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["state"] == "Down"
    assert result["error"]["code"] == "CONNECTION_REFUSED"
    assert set(result["timings"]) == {"dns", "connect", "tls", "data", "total"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["probe", "nohost"], "expected HOST:PORT"),
        (["probe", "h:0"], "expected 1-65535"),
        (["probe", "::1:80"], "[ADDRESS]:PORT"),
        (["probe", "h:1", "--send", r"\q"], r"unknown escape \q"),
        (["probe", "h:1", "--timeout", "soon"], "--timeout: invalid duration"),
        (
            ["probe", "h:1", "--degraded-after", "2s", "--max-response-time", "1s"],
            "must be less than maxResponseTime",
        ),
        (["probe", "h:1", "--ca", "/nonexistent/ca.pem"], "cannot read /nonexistent/ca.pem"),
        (["probe", "h:1", "--cert", "c.pem"], "--cert and --key go together"),
        (["probe"], "give either HOST:PORT or -f PATH"),
        (["probe", "--bogus"], "unrecognized arguments: --bogus"),
        (["probe-now", "web", "--timeout", "soon"], "--timeout: invalid duration"),
        (
            ["probe-now", "web", "--kubeconfig", "/nonexistent/kubeconfig"],
            "no cluster credentials",
        ),
        (["run", "-f", "m.yaml", "--min-interval", "500ms"], "--min-interval: at least 1s"),
        (["operator", "--min-interval", "0s"], "--min-interval: at least 1s"),
        (["runner", "--location", "eu", "--min-interval", "soon"], "--min-interval: invalid"),
        (
            [
                "run",
                "-f",
                "m.yaml",
                "--max-concurrency",
                "4",
                "--max-concurrency-per-namespace",
                "5",
            ],
            "--max-concurrency-per-namespace: between 1 and --max-concurrency",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err


def test_probe_file_reports_namespace_and_name(
    echo_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\n"
        "metadata: {name: echo, namespace: team-a}\n"
        f"spec: {{host: 127.0.0.1, port: {echo_port}, send: ping,"
        " assertions: [{source: ResponseData, comparison: Equals, target: 'echo:ping'}]}\n---\n"
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\n"
        "metadata: {name: closed, namespace: team-a}\n"
        f"spec: {{host: 127.0.0.1, port: {closed_port()}}}\n"
    )
    code = main(["probe", "-f", str(tmp_path), "-o", "json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [(r["namespace"], r["name"], r["state"]) for r in results] == [
        ("team-a", "echo", "Up"),
        ("team-a", "closed", "Down"),
    ]


def test_probe_file_with_problems_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\n"
        "metadata: {name: x}\nspec: {host: h, port: 0}\n"
    )
    assert main(["probe", "-f", str(tmp_path / "m.yaml")]) == 2
    assert "m.yaml:doc 1: spec.port:" in capsys.readouterr().err


def test_probe_tls_with_ca_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(ctx)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    with blocking_tls_server(ctx) as port:
        code = main(
            [
                "probe",
                f"localhost:{port}",
                "--tls",
                "--ca",
                str(tmp_path / "ca.pem"),
                "--ip-family",
                "ipv4",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified" in out and "names      localhost" in out and "expires" in out


def test_validate_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\nmetadata: {name: a}\n"
        "spec: {host: h, port: 1, interval: 5s, timeout: 10s}\n---\n"
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\nmetadata: {name: b}\n"
        "spec: {host: h, port: 1, assertions: [{source: ResponseData, comparison: Matches,"
        " target: '[a-'}]}\n"
    )
    assert main(["validate", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{tmp_path / 'm.yaml'}:doc 1: spec.timeout: timeout (10s) must not exceed interval (5s)",
        f"{tmp_path / 'm.yaml'}:doc 2: spec.assertions[0].target: '[a-' is not a valid RE2 "
        "regular expression: missing ]: [a-",
    ]


def test_validate_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    assert main(["validate", str(examples)]) == 0
    assert capsys.readouterr().out == ""


def test_crd_command_prints_the_generated_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == render_crd_yaml()


def test_console_script_is_installed() -> None:
    exe = shutil.which("tcpmonitor")
    assert exe is not None, "pip install -e . installs the tcpmonitor console script"
    done = subprocess.run(
        [exe, "probe", f"127.0.0.1:{closed_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "CONNECTION_REFUSED" in done.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:80", ("example.com", 80)),
        ("10.0.0.1:5432", ("10.0.0.1", 5432)),
        ("[::1]:8443", ("::1", 8443)),
        ("[2001:db8::1]:1", ("2001:db8::1", 1)),
    ],
)
def test_parse_target(text: str, expected: tuple[str, int]) -> None:
    assert parse_target(text) == expected


def test_unescape_keeps_bytes_exact() -> None:
    assert unescape(r"a\r\n\t\\\x00\xffé") == b"a\r\n\t\\\x00\xff" + "é".encode()


def test_runtime_flags_reach_the_settings() -> None:
    parser = argparse.ArgumentParser()
    add_runtime_options(parser, default_address="127.0.0.1")
    defaults = runtime_settings(parser.parse_args([]))
    assert defaults.min_interval == 1.0 and defaults.max_concurrency_per_namespace is None
    raised = runtime_settings(
        parser.parse_args(
            [
                "--min-interval",
                "30s",
                "--max-concurrency",
                "100",
                "--max-concurrency-per-namespace",
                "10",
            ]
        )
    )
    assert raised.min_interval == 30.0
    assert (raised.max_concurrency, raised.max_concurrency_per_namespace) == (100, 10)


def _redis_script(sock: socket.socket) -> None:
    assert sock.recv(100) == b"PING\r\n"
    sock.sendall(b"-NOAUTH Authentication required.\r\n")
    sock.recv(100)


def _smtp_starttls_script(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def script(sock: socket.socket) -> None:
        lines = sock.makefile("rb")
        sock.sendall(b"220 mail.test ESMTP\r\n")
        lines.readline()
        sock.sendall(b"250-mail.test\r\n250 STARTTLS\r\n")
        assert lines.readline() == b"STARTTLS\r\n"
        sock.sendall(b"220 Ready\r\n")
        with context.wrap_socket(sock, server_side=True) as secure:
            secure.recv(100)  # EHLO
            secure.sendall(b"250 mail.test\r\n")
            secure.recv(100)  # QUIT

    return script


@pytest.mark.parametrize("name", ["redis", "REDIS", "Redis"])
def test_probe_protocol_is_case_insensitive_and_json_carries_it(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_blocking(BlockingScript(_redis_script)) as port:
        code = main(["probe", f"127.0.0.1:{port}", "--protocol", name, "-o", "json"])
    [result] = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["protocol"] == {"name": "Redis", "detail": "NOAUTH Authentication required."}


def test_probe_smtp_starttls_reports_the_upgraded_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    argv = ["--protocol", "smtp", "--starttls", "--tls", "--ca", str(tmp_path / "ca.pem")]
    with serve_blocking(BlockingScript(_smtp_starttls_script(context))) as port:
        code = main(["probe", f"127.0.0.1:{port}", *argv, "-o", "json"])
    [result] = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["error"] is None
    assert result["protocol"] == {"name": "SMTP", "detail": "mail.test ESMTP"}
    assert result["tls"]["verified"] is True
    assert "O=trustme" in result["tls"]["certificate"]["issuer"]
    assert result["tls"]["certificate"]["dnsNames"] == []  # issued for the IP address


def test_probe_expect_unreachable(capsys: pytest.CaptureFixture[str], echo_port: int) -> None:
    assert main(["probe", f"127.0.0.1:{closed_port()}", "--expect-unreachable"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("  Up")
    code = main(["probe", f"127.0.0.1:{echo_port}", "--expect-unreachable", "-o", "json"])
    [result] = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["error"]["code"] == "UNEXPECTEDLY_REACHABLE"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--protocol", "ssh", "--starttls"], "--starttls: SSH has no STARTTLS"),
        (["--protocol", "gopher"], "--protocol: unknown protocol 'gopher'"),
        (["--protocol", "smtp", "--send", "x"], "--protocol: a protocol sends its own messages"),
        (["--expect-unreachable", "--tls"], "--expect-unreachable: expect: Unreachable only"),
    ],
)
def test_probe_refuses_nonsense_combinations(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "127.0.0.1:25", *argv]) == 2
    assert message in capsys.readouterr().err


def test_probe_file_runs_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_blocking(BlockingScript(_redis_script)) as port:
        manifest = {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitor",
            "metadata": {"name": "steps", "namespace": "default"},
            "spec": {
                "host": "127.0.0.1",
                "port": port,
                "timeout": "2s",
                "steps": [{"send": "PING\r\n", "expect": "^-NOAUTH"}],
            },
        }
        (tmp_path / "m.yaml").write_text(yaml.safe_dump(manifest))
        code = main(["probe", "-f", str(tmp_path / "m.yaml"), "-o", "json"])
    [result] = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert len(result["steps"]) == 1 and result["steps"][0]["passed"] is True


def _policy_file(tmp_path: Path, *rules: dict[str, object]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tcpmonitor.dev/v1alpha1",
                "kind": "TcpMonitorPolicy",
                "metadata": {"name": "local"},
                "spec": {"rules": list(rules)},
            }
        )
    )
    return path


def test_probe_checks_no_policy_unless_asked(
    echo_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{echo_port}"
    assert main(["probe", target, "-o", "json"]) == 0
    capsys.readouterr()
    # With --policy the built-in refusal of loopback applies, as in the operator.
    assert main(["probe", target, "-o", "json", "--policy", str(_policy_file(tmp_path))]) == 1
    [result] = json.loads(capsys.readouterr().out)
    assert result["error"]["code"] == "TARGET_FORBIDDEN"
    assert "refused by builtin/loopback" in result["error"]["message"]
    allow = {"name": "lo", "action": "Allow", "cidrs": ["127.0.0.1/32"]}
    assert main(["probe", target, "--policy", str(_policy_file(tmp_path, allow))]) == 0


def test_validate_names_the_field_of_a_bad_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"name": "r", "action": "Allow", "cidrs": ["10.0.0.0/33"]}
    path = _policy_file(tmp_path, bad)
    assert main(["validate", str(path)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{path}:doc 1: spec.rules[0].cidrs")
    assert "address range" in line


def test_crd_command_prints_the_policy_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd", "--policy"]) == 0
    out = capsys.readouterr().out
    committed = (
        Path(__file__).resolve().parents[3] / "crds" / "tcpmonitorpolicies.tcpmonitor.dev.yaml"
    )
    assert out == committed.read_text(), "run `tcpmonitor crd --policy > crds/...` and copy"
