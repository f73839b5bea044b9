"""Hostile targets and certificates: a result, a state and clean output, never a traceback.

Each attack is made against ``tcpmonitor probe`` (a table, an exit code of 0 or 1) and
``tcpmonitor run`` (event lines, one per event), with a well-behaved monitor in the same ``run``
process that must keep its schedule.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tcpmonitor.api import ProbeResult

from ..unit.servers import blocking_tls_server, never_reading_server, payload_beyond_socket_buffers
from .bounds import assert_result_fits_the_status
from .bystander import Bystander
from .certificates import HostileCertificate, hostile_certificate
from .listeners import Listener
from .listeners import reply as reply_with
from .standalone import standalone, write_manifests

INTERVAL = 1.0
WINDOW = 6.0
# One line per event, and nothing on it a target wrote raw.
EVENT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (Normal|Warning) [A-Za-z]+ [a-z0-9-]+/[a-z0-9-]+: [ -~]*"
)
FORGED = "evil\x1b[2J\r\n2026-12-01T00:00:00Z Normal TargetUp prod/payments-db: ok\u202e"
NON_ASCII_NAME = {b"bad-Xname": b"bad-\xe9name"}
RAW_CONTROLS = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


def probe_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tcpmonitor", "probe", *args],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss(pid: int) -> int:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def monitor(name: str, port: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": "hostile"},
        "spec": {"host": "127.0.0.1", "port": port, "interval": "1s", "timeout": "500ms"} | spec,
    }


def insecure_tls(name: str, port: int, **spec: Any) -> dict[str, Any]:
    return monitor(name, port, tls={"enabled": True, "insecureSkipVerify": True}, **spec)


@contextmanager
def tls_target(tmp_path: Path, cert: HostileCertificate) -> Iterator[int]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    with blocking_tls_server(cert.server_context(tmp_path)) as port:
        yield port


def run_next_to_a_bystander(tmp_path: Path, *hostile: dict[str, Any]) -> tuple[bytes, int]:
    """``tcpmonitor run`` with the hostile monitors and a good one for WINDOW seconds; the
    output, after proving the good monitor kept its schedule."""
    logs = tmp_path / "run.log"
    with Bystander() as good:
        manifests = write_manifests(tmp_path / "monitors.yaml", good.monitor(), *hostile)
        with standalone("-f", str(manifests), logs=logs) as (proc, _):
            start = time.monotonic()
            time.sleep(WINDOW)
            assert proc.poll() is None, logs.read_text()[-2000:]
            fds = open_fds(proc.pid)
        good.assert_on_time(INTERVAL, window=WINDOW, start=start)
    return logs.read_bytes(), fds


def assert_clean_run_output(output: bytes) -> list[str]:
    """No traceback, no raw control byte, and every line an event or one of ours."""
    assert b"Traceback" not in output, output.decode(errors="replace")[-3000:]
    assert not RAW_CONTROLS.search(output), output
    lines = output.decode().splitlines()
    events = [line for line in lines if EVENT_LINE.fullmatch(line)]
    others = [line for line in lines if line not in events]
    assert all(line.startswith(("probing ", "reloaded ")) for line in others), others
    # A forged event would be a line of its own; escaped, it stays inside the real one.
    assert not [e for e in events if "prod/payments-db" in e.split(": ", 1)[0]], events
    return events


def assert_clean_table(output: bytes) -> str:
    assert not RAW_CONTROLS.search(output), output
    text = output.decode()
    assert all(line == "" or line.startswith(("127.0.0.1:", "  ")) for line in text.splitlines())
    return text


def test_non_ascii_dns_name_gives_a_result_and_a_state(tmp_path: Path) -> None:
    cert = hostile_certificate(dns_names=["localhost", "bad-Xname.example"], patches=NON_ASCII_NAME)
    with tls_target(tmp_path, cert) as port:
        for extra in (["--insecure"], []):
            done = probe_cli(f"127.0.0.1:{port}", "--tls", *extra)
            assert done.returncode in (0, 1), done.stderr.decode()
            assert b"Traceback" not in done.stderr
            table = assert_clean_table(done.stdout)
            assert "TLS_CERTIFICATE_UNREADABLE" in table
            assert "bad-\\xe9name.example" in table
        output, _ = run_next_to_a_bystander(
            tmp_path,
            insecure_tls("bad-name", port),
            monitor("bad-name-verified", port, tls={"enabled": True}),
        )
    events = assert_clean_run_output(output)
    assert any("hostile/bad-name:" in e and "TargetDegraded" in e for e in events), events
    assert any("hostile/bad-name-verified:" in e and "TargetDown" in e for e in events), events


def test_long_and_many_dns_names_fit_the_status(tmp_path: Path) -> None:
    targets = {
        "long-name": hostile_certificate(dns_names=["a" * 300, "localhost"]),
        "many-names": hostile_certificate(dns_names=[f"n{i}.example" for i in range(1000)]),
    }
    with ExitStack() as stack:
        ports = {n: stack.enter_context(tls_target(tmp_path / n, c)) for n, c in targets.items()}
        for port in ports.values():
            done = probe_cli(f"127.0.0.1:{port}", "--tls", "--insecure", "-o", "json")
            assert done.returncode == 0, done.stderr.decode()
            for item in json.loads(done.stdout):
                assert_result_fits_the_status(ProbeResult.model_validate(item))
        output, _ = run_next_to_a_bystander(
            tmp_path, *(insecure_tls(n, p) for n, p in ports.items())
        )
    events = assert_clean_run_output(output)
    for name in targets:
        assert any(f"hostile/{name}:" in e and "TargetUp" in e for e in events), events


def test_control_characters_from_the_target_cannot_forge_lines(tmp_path: Path) -> None:
    # Expiring soon, so run's CertificateExpiring event quotes the subject.
    cert = hostile_certificate(common_name=FORGED, dns_names=["a\r\nb\x1b[0m.example"], days=5)
    reply = f"{FORGED}\n".encode()
    with ExitStack() as stack:
        tls_port = stack.enter_context(tls_target(tmp_path, cert))
        plain_port = stack.enter_context(Listener(reply_with(reply, hold=False))).port
        table = b""
        for args in (
            [f"127.0.0.1:{tls_port}", "--tls", "--insecure"],
            [f"127.0.0.1:{plain_port}", "--expect", "never"],
        ):
            done = probe_cli(*args)
            assert done.returncode in (0, 1), done.stderr.decode()
            table += done.stdout
        output, _ = run_next_to_a_bystander(
            tmp_path,
            insecure_tls("forged-subject", tls_port),
            monitor(
                "forged-reply",
                plain_port,
                assertions=[{"source": "ResponseData", "comparison": "Contains", "target": "x"}],
            ),
        )
    rows = assert_clean_table(table).splitlines()
    escaped = "evil\\x1b[2J\\r\\n2026"
    assert any(r.startswith("  subject") and f"CN={escaped}" in r for r in rows), rows
    assert any(r.startswith("  response") and escaped in r for r in rows), rows
    events = assert_clean_run_output(output)
    expiring = [e for e in events if "CertificateExpiring hostile/forged-subject:" in e]
    assert expiring and "CN=evil\\x1b[2J\\r\\n2026" in expiring[0], events


def test_payload_a_target_never_reads_costs_no_descriptors(tmp_path: Path) -> None:
    size = payload_beyond_socket_buffers()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "big", "namespace": "hostile"},
        "data": {"payload": base64.b64encode(b"x" * size).decode()},
    }
    with never_reading_server() as port:
        hostile = monitor(
            "never-reads", port, sendFrom={"secretKeyRef": {"name": "big", "key": "payload"}}
        )
        logs = tmp_path / "run.log"
        with Bystander() as good:
            manifests = write_manifests(tmp_path / "m.yaml", good.monitor(), hostile, secret)
            with standalone("-f", str(manifests), logs=logs, startup=60) as (proc, _):
                start = time.monotonic()
                time.sleep(2.5)
                before, rss_before = open_fds(proc.pid), rss(proc.pid)
                time.sleep(WINDOW)
                after, rss_after = open_fds(proc.pid), rss(proc.pid)
            good.assert_on_time(INTERVAL, window=WINDOW + 2.5, start=start)
    assert after <= before, f"{after - before} descriptors more after {WINDOW:.0f} probes"
    # Leaking, each probe kept what the kernel would not take: most of a payload.
    assert rss_after - rss_before < size, f"RSS {rss_before} -> {rss_after} bytes"
    events = assert_clean_run_output(logs.read_bytes())
    assert any("hostile/never-reads:" in e and "SEND_TIMEOUT" in e for e in events), events
