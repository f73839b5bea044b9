"""Prometheus metrics: per monitor (labels namespace and name only) and for the process.

Cardinality is bounded by design: per-monitor series are gauges and counters with a fixed set
of label values (no per-monitor histograms, no error messages as labels), and every series of a
monitor is removed when the monitor is.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .api import MonitorState, ProbeResult, Verdict

Key = tuple[str, str]
PHASES = ("dns", "connect", "tls", "data", "total")
STATES = tuple(s.value for s in MonitorState)
RESULTS = tuple(v.value for v in Verdict)
SKIP_REASONS = ("concurrency", "overlap")
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = ("namespace", "name")
        self.probe_success = Gauge(
            "tcpmonitor_probe_success",
            "1 if the last probe was Up or Degraded, else 0.",
            labels,
            registry=r,
        )
        self.state = Gauge(
            "tcpmonitor_state",
            "1 for the monitor's current state, 0 for the others.",
            (*labels, "state"),
            registry=r,
        )
        self.phase_seconds = Gauge(
            "tcpmonitor_probe_phase_duration_seconds",
            "Duration of each phase of the last probe; absent for a phase not performed.",
            (*labels, "phase"),
            registry=r,
        )
        self.probes = Counter(
            "tcpmonitor_probes",
            "Probes by verdict (Up, Degraded, Down).",
            (*labels, "result"),
            registry=r,
        )
        self.cert_expiry = Gauge(
            "tcpmonitor_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the target's certificate, also when it failed verification.",
            labels,
            registry=r,
        )
        self.monitors_scheduled = Gauge(
            "tcpmonitor_monitors_scheduled", "Monitors being probed by this process.", registry=r
        )
        self.probes_in_flight = Gauge(
            "tcpmonitor_probes_in_flight", "Probes running right now.", registry=r
        )
        self.schedule_lag = Histogram(
            "tcpmonitor_schedule_lag_seconds",
            "Delay between a probe's slot and its start (concurrency limit, event loop load).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.probes_skipped = Counter(
            "tcpmonitor_probes_skipped",
            "Probes not run, by reason: concurrency (no slot free before the next was due) or "
            "overlap (the monitor's previous probe was still running).",
            ("reason",),
            registry=r,
        )
        self.monitor_probes_skipped = Counter(
            "tcpmonitor_monitor_probes_skipped",
            "Probes of this monitor not run, by reason (concurrency or overlap).",
            (*labels, "reason"),
            registry=r,
        )
        self.probe_errors = Counter(
            "tcpmonitor_probe_errors",
            "Unexpected exceptions while probing a monitor or reporting its result (bugs).",
            ("type",),
            registry=r,
        )
        self.status_patches = Counter(
            "tcpmonitor_status_patches",
            "Status writes to the API server, by result.",
            ("result",),
            registry=r,
        )
        self.events_posted = Counter(
            "tcpmonitor_events_posted",
            "Kubernetes Events posted, by reason.",
            ("reason",),
            registry=r,
        )
        self._phases_seen: dict[Key, set[str]] = {}

    def observe(self, key: Key, result: ProbeResult, state: MonitorState) -> None:
        namespace, name = key
        self.probe_success.labels(namespace, name).set(0 if result.state is Verdict.DOWN else 1)
        self.probes.labels(namespace, name, result.state.value).inc()
        timings = result.timings
        seen = self._phases_seen.setdefault(key, set())
        for phase in PHASES:
            value = getattr(timings, phase)
            if value is None:
                if phase in seen:
                    self.phase_seconds.remove(namespace, name, phase)
                    seen.discard(phase)
            else:
                self.phase_seconds.labels(namespace, name, phase).set(value / 1000)
                seen.add(phase)
        cert = result.tls.certificate if result.tls else None
        if cert is not None:
            self.cert_expiry.labels(namespace, name).set(cert.not_after.timestamp())
        self.set_state(key, state)

    def set_state(self, key: Key, state: MonitorState) -> None:
        namespace, name = key
        for value in STATES:
            self.state.labels(namespace, name, value).set(1 if value == state.value else 0)

    def skipped(self, key: Key, reason: str) -> None:
        self.probes_skipped.labels(reason).inc()
        self.monitor_probes_skipped.labels(*key, reason).inc()

    def forget(self, key: Key) -> None:
        """Remove every series of a deleted monitor."""
        namespace, name = key
        for metric in (self.probe_success, self.cert_expiry):
            _remove(metric, namespace, name)
        for value in STATES:
            _remove(self.state, namespace, name, value)
        for value in RESULTS:
            _remove(self.probes, namespace, name, value)
        for reason in SKIP_REASONS:
            _remove(self.monitor_probes_skipped, namespace, name, reason)
        for phase in self._phases_seen.pop(key, set()):
            _remove(self.phase_seconds, namespace, name, phase)


def _remove(metric: Gauge | Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
