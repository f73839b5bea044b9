"""Our product as users run it: ``tcpmonitor probe HOST:PORT ... -o json``, in-process.

In-process (the CLI's ``main``) rather than a subprocess: the same code path, without a
second of interpreter start-up per probe.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from typing import Any

from tcpmonitor.cli.main import main
from tests.daemons.runner import Daemon

# Bounds every probe; a daemon on loopback answers in milliseconds.
TIMEOUT = "5s"


@dataclass(frozen=True)
class Probe:
    exit_code: int
    result: dict[str, Any]

    @property
    def state(self) -> str:
        state: str = self.result["state"]
        return state

    @property
    def error_code(self) -> str | None:
        error = self.result.get("error")
        return None if error is None else str(error["code"])

    @property
    def protocol(self) -> dict[str, Any]:
        protocol = self.result.get("protocol")
        assert isinstance(protocol, dict), f"no result.protocol in {self.result}"
        return protocol

    @property
    def certificate(self) -> dict[str, Any]:
        tls = self.result.get("tls")
        assert tls is not None, f"no result.tls in {self.result}"
        certificate = tls.get("certificate")
        assert isinstance(certificate, dict), f"no result.tls.certificate in {self.result}"
        return certificate


def probe(target: str, *options: str) -> Probe:
    """Run the CLI; its JSON output is a list with one result per target."""
    argv = ["probe", target, *options, "--timeout", TIMEOUT, "-o", "json"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert out.getvalue(), f"tcpmonitor {' '.join(argv)}: exit {code}, {err.getvalue()}"
    results = json.loads(out.getvalue())
    assert isinstance(results, list) and len(results) == 1, out.getvalue()
    return Probe(code, results[0])


def tls_options(daemon: Daemon, *, starttls: bool) -> list[str]:
    """Verify against the test CA, with the name every test certificate carries."""
    assert daemon.certificate is not None
    options = ["--tls", "--ca", str(daemon.certificate.ca_path), "--sni", "localhost"]
    return [*options, "--starttls"] if starttls else options


def assert_up(outcome: Probe) -> None:
    assert outcome.state == "Up", f"expected Up: {json.dumps(outcome.result, indent=2)}"
    assert outcome.exit_code == 0


def assert_down(outcome: Probe, code: str | None = None) -> None:
    assert outcome.state == "Down", f"expected Down: {json.dumps(outcome.result, indent=2)}"
    assert outcome.exit_code == 1
    if code is not None:
        assert outcome.error_code == code, json.dumps(outcome.result, indent=2)


def assert_served_by(outcome: Probe, daemon: Daemon) -> None:
    """The certificate in the result is the one this daemon serves, and it was verified."""
    assert daemon.certificate is not None
    certificate = outcome.certificate
    assert certificate["sha256Fingerprint"] == daemon.certificate.sha256_fingerprint
    assert daemon.certificate.common_name in certificate["subject"]
    assert outcome.result["tls"]["verified"] is True
