"""Issue 9 on the real control plane: a hostile monitor in one namespace, a good one in another.

The operator probes both; the good monitor's target counts the connections it gets
(``tests/hostile/bystander.py``), so "it kept its schedule" is measured where a user would see it,
and its status must keep moving while the hostile one is reported on itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane import Cluster
from tests.hostile.bystander import Bystander
from tests.hostile.certificates import forging_certificate
from tests.hostile.listeners import Listener, reply, tls_reply

from .operator_process import (
    OperatorProcess,
    apply,
    condition,
    events,
    eventually,
    state_is,
    status,
    tcpmonitor,
)

MIN_INTERVAL = "2s"  # the bystander's interval too: a dozen probes fit in a short window
INTERVAL = 2.0


@pytest.fixture(scope="module")
def operator(
    control_plane: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    # The platform's minimum above the schema's: intervals the API server accepts can still be
    # refused by the operator, on that monitor alone.
    process = OperatorProcess(
        control_plane,
        tmp_path_factory.mktemp("hostile-operator"),
        "--heartbeat",
        "60s",
        "--min-interval",
        MIN_INTERVAL,
    )
    yield process
    process.stop()


@pytest.fixture
def good(control_plane: Cluster, namespace: str) -> Iterator[Bystander]:
    with Bystander() as bystander:
        body = bystander.monitor(namespace=namespace, interval=MIN_INTERVAL, timeout="1s")
        apply(control_plane, body)
        yield bystander


def on_time(bystander: Bystander, since: float, seconds: float) -> dict[str, float]:
    time.sleep(max(0.0, since + seconds - time.monotonic()))
    return bystander.assert_on_time(INTERVAL, window=seconds, start=since, max_late=1.0)


def test_an_interval_below_the_platform_minimum_is_refused_on_that_monitor_only(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, good: Bystander
) -> None:
    with Bystander() as hostile:
        apply(control_plane, hostile.monitor("too-often", namespace, interval="1s", timeout="1s"))
        st = eventually(
            lambda: (
                (s := status(control_plane, namespace, "too-often"))
                and condition(s, "Ready")["status"] == "False"
                and s
            ),
            20,
            message="Ready=False on the hostile monitor",
        )
        ready = condition(st, "Ready")
        assert ready["reason"] == "IntervalTooShort", ready
        assert MIN_INTERVAL in ready["message"]
        eventually(lambda: state_is(control_plane, namespace, "bystander", "Up"), 20, message="Up")
        start = time.monotonic()
        figures = on_time(good, start, 16)
        assert hostile.accepts == [], "a refused monitor must not be probed"
    warnings = [e for e in events(control_plane, namespace, "too-often") if e["type"] == "Warning"]
    assert warnings and warnings[0]["reason"] == "InvalidSpec"
    print(f"bystander under a too-short interval: {figures}")


def test_a_catastrophic_regular_expression_is_decided_and_hurts_nobody(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, good: Bystander
) -> None:
    target = Listener(reply(b"a" * 40 + b"!"))
    try:
        evil: dict[str, Any] = {"source": "ResponseData", "comparison": "Matches"}
        apply(
            control_plane,
            *(
                tcpmonitor(
                    namespace,
                    f"regex-{i}",
                    port=target.port,
                    interval=MIN_INTERVAL,
                    timeout="2s",
                    assertions=[evil | {"target": "(a+)+$"}],
                )
                for i in range(4)
            ),
        )
        st = eventually(
            lambda: state_is(control_plane, namespace, "regex-0", "Down"), 20, message="Down"
        )
        assert st["lastResult"]["error"]["code"] == "ASSERTION_FAILED"
        start = time.monotonic()
        figures = on_time(good, start, 16)
        assert operator._get("/healthz")[0] == 200
    finally:
        target.close()
    print(f"bystander under (a+)+$: {figures}")


def test_a_hostile_certificate_is_reported_escaped_and_bounded(
    control_plane: Cluster,
    operator: OperatorProcess,
    namespace: str,
    good: Bystander,
    tmp_path: Path,
) -> None:
    target = Listener(tls_reply(forging_certificate().server_context(tmp_path), b"hello\n"))
    try:
        apply(
            control_plane,
            tcpmonitor(
                namespace,
                "evil-cert",
                port=target.port,
                interval=MIN_INTERVAL,
                timeout="2s",
                tls={"enabled": True, "insecureSkipVerify": True},
            ),
        )
        st = eventually(
            lambda: (
                (s := status(control_plane, namespace, "evil-cert")) and s.get("lastResult") and s
            ),
            20,
            message="a status with the result (the API server accepted the write)",
        )
        cert = st["lastResult"]["tls"]["certificate"]
        shown = " ".join([cert["subject"], *cert.get("dnsNames", [])])
        assert not any(ch in shown for ch in "\x1b\r\n"), shown
        assert all(len(name) <= 253 for name in cert.get("dnsNames", []))
        start = time.monotonic()
        figures = on_time(good, start, 11)
        for event in events(control_plane, namespace, "evil-cert"):
            assert not any(ch in event["note"] for ch in "\x1b\r\n"), event["note"]
        assert "write" not in operator.log().lower() or "422" not in operator.log()
    finally:
        target.close()
    print(f"bystander under a hostile certificate: {figures}")
