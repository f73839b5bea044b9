"""Per-monitor series: what a probe sets, what a later probe or a removal takes away."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tcpmonitor.api import MonitorState, ProbeResult, Timings, TlsInfo, Verdict
from tcpmonitor.telemetry.metrics import Metrics

KEY = ("shop", "web")


def series(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def probe(state: Verdict, **timings: float) -> ProbeResult:
    return ProbeResult(state=state, started_at=datetime.now(UTC), timings=Timings(**timings))


def labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": "shop", "name": "web", **extra}.items()))


def test_a_probe_sets_success_state_phases_and_counts() -> None:
    metrics = Metrics()
    metrics.observe(KEY, probe(Verdict.UP, connect=1.5, total=2.0), MonitorState.UP)
    metrics.observe(KEY, probe(Verdict.DOWN, connect=3.0, total=4.0), MonitorState.DOWN)
    got = series(metrics)
    assert got[("tcpmonitor_probe_success", labels())] == 0
    assert got[("tcpmonitor_state", labels(state="Down"))] == 1
    assert got[("tcpmonitor_state", labels(state="Up"))] == 0
    assert got[("tcpmonitor_probe_phase_duration_seconds", labels(phase="connect"))] == 0.003
    assert got[("tcpmonitor_probes_total", labels(result="Up"))] == 1
    assert got[("tcpmonitor_probes_total", labels(result="Down"))] == 1


def test_a_phase_the_last_probe_did_not_perform_has_no_series() -> None:
    metrics = Metrics()
    metrics.observe(KEY, probe(Verdict.UP, dns=1.0, connect=1.5, total=2.0), MonitorState.UP)
    metrics.observe(KEY, probe(Verdict.UP, connect=1.5, total=2.0), MonitorState.UP)
    phases = {
        dict(key[1])["phase"]
        for key in series(metrics)
        if key[0] == "tcpmonitor_probe_phase_duration_seconds"
    }
    assert phases == {"connect", "total"}


def test_forgetting_a_monitor_removes_every_series_and_a_state_alone_is_exported() -> None:
    metrics = Metrics()
    metrics.observe(KEY, probe(Verdict.UP, connect=1.0, total=1.0), MonitorState.UP)
    metrics.set_state(("shop", "paused"), MonitorState.PAUSED)
    metrics.forget(KEY)
    names = {dict(key[1])["name"] for key in series(metrics) if "name" in dict(key[1])}
    assert names == {"paused"}
    assert (
        series(metrics)[
            ("tcpmonitor_state", (("name", "paused"), ("namespace", "shop"), ("state", "Paused")))
        ]
        == 1
    )


def test_certificate_and_chain_expiry_are_separate_series() -> None:
    leaf_expiry = datetime(2031, 1, 1, tzinfo=UTC)
    chain_expiry = datetime(2027, 6, 1, tzinfo=UTC)
    tls = TlsInfo.model_validate(
        {
            "verified": True,
            "certificate": {
                "subject": "CN=leaf",
                "issuer": "CN=intermediate",
                "notBefore": datetime(2026, 1, 1, tzinfo=UTC),
                "notAfter": leaf_expiry,
                "daysRemaining": 1000.0,
                "sha256Fingerprint": "00:11",
            },
            "chainLength": 2,
            "chainExpiry": chain_expiry,
        }
    )
    metrics = Metrics()
    result = ProbeResult(state=Verdict.UP, started_at=datetime.now(UTC), tls=tls)
    metrics.observe(KEY, result, MonitorState.UP)
    got = series(metrics)
    assert got[("tcpmonitor_tls_certificate_expiry_timestamp_seconds", labels())] == (
        leaf_expiry.timestamp()
    )
    assert got[("tcpmonitor_tls_chain_expiry_timestamp_seconds", labels())] == (
        chain_expiry.timestamp()
    )
    # A probe without TLS facts keeps the last known expiries, as for the leaf.
    metrics.observe(KEY, probe(Verdict.DOWN, total=1.0), MonitorState.DOWN)
    assert ("tcpmonitor_tls_chain_expiry_timestamp_seconds", labels()) in series(metrics)


def test_each_results_counter_keeps_its_creation_time_and_the_order_first_seen() -> None:
    metrics = Metrics()
    metrics.observe(KEY, probe(Verdict.DOWN, total=1.0), MonitorState.DOWN)
    down_created = probes_samples(metrics)["tcpmonitor_probes_created"]
    metrics.observe(KEY, probe(Verdict.UP, total=1.0), MonitorState.UP)
    metrics.observe(KEY, probe(Verdict.DOWN, total=1.0), MonitorState.UP)
    got = probes_samples(metrics)
    assert got["tcpmonitor_probes_total"] == [("Down", 2.0), ("Up", 1.0)]
    assert [r for r, _ in got["tcpmonitor_probes_created"]] == ["Down", "Up"]
    assert got["tcpmonitor_probes_created"][0] == down_created[0]


def probes_samples(metrics: Metrics) -> dict[str, list[tuple[str, float]]]:
    """The probes counter's samples in the order of the exposition, by sample name."""
    text = generate_latest(metrics.registry).decode()
    out: dict[str, list[tuple[str, float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("tcpmonitor_probes_") and "result" in s.labels:
                out.setdefault(s.name, []).append((s.labels["result"], s.value))
    return out
