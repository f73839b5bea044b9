"""Prometheus metrics: per monitor (labels namespace and name only) and for the process.

Cardinality is bounded by design: per-monitor series are gauges and counters with a fixed set
of label values (no per-monitor histograms, no error messages as labels), and every series of a
monitor is removed when the monitor is.

The per-monitor series (five families, about ten series a monitor) live in plain rows, one per
monitor with its labels escaped once, instead of one prometheus_client child per series: at
10,000 monitors that makes the exposition text about ten times cheaper to produce, and it can
be produced a few hundred rows at a time (``text_pieces``), which lets the thread that renders
it hand the GIL back to the event loop between pieces. Readers of the registry that know
nothing of this (``generate_latest``) still see ordinary samples.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ..api import MonitorState, ProbeResult, Verdict

Key = tuple[str, str]
PHASES = ("dns", "connect", "tls", "data", "total")
STATES = tuple(s.value for s in MonitorState)
RESULTS = tuple(v.value for v in Verdict)
SKIP_REASONS = ("concurrency", "overlap")
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROWS_PER_PIECE = 256

_go_float: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(slots=True)
class _Row:
    """Every per-monitor series of one monitor."""

    namespace: str
    name: str
    labels: str  # 'name="...",namespace="..."': escaped once, in the sorted order of the text
    success: float | None = None
    state: str | None = None
    # Tuples, not dicts (a dict is 184 bytes even with one entry; ten thousand rows): replaced
    # whole by each probe, so a render in its thread reads either the old one or the new one.
    # Seconds per phase of the last probe, in PHASES order; None for a phase not performed.
    phases: tuple[float | None, ...] = ()
    # (result, count, created) per result seen, in the order they were first seen.
    probes: tuple[tuple[str, float, float], ...] = ()
    cert_expiry: float | None = None
    chain_expiry: float | None = None


# A family's lines for one row, each with its extra label (or None) and its value; the
# ``_created`` lines of the counter are a family of their own in the text format.
_Lines = Callable[[_Row], list[tuple[str | None, float]]]


def _success(row: _Row) -> list[tuple[str | None, float]]:
    return [] if row.success is None else [(None, row.success)]


def _state(row: _Row) -> list[tuple[str | None, float]]:
    if row.state is None:
        return []
    return [(f'state="{_escape(s)}"', 1.0 if s == row.state else 0.0) for s in STATES]


def _phases(row: _Row) -> list[tuple[str | None, float]]:
    return [(f'phase="{p}"', v) for p, v in zip(PHASES, row.phases, strict=False) if v is not None]


def _probes(row: _Row) -> list[tuple[str | None, float]]:
    return [(f'result="{r}"', count) for r, count, _ in row.probes]


def _probes_created(row: _Row) -> list[tuple[str | None, float]]:
    return [(f'result="{r}"', created) for r, _, created in row.probes]


def _cert_expiry(row: _Row) -> list[tuple[str | None, float]]:
    return [] if row.cert_expiry is None else [(None, row.cert_expiry)]


def _chain_expiry(row: _Row) -> list[tuple[str | None, float]]:
    return [] if row.chain_expiry is None else [(None, row.chain_expiry)]


class _Family(Metric):
    """One per-monitor family over a snapshot of the rows.

    ``text_pieces`` writes its Prometheus text straight from the rows, a few hundred at a time,
    exactly as ``generate_latest`` would write ``samples`` (a test holds it to that); the
    samples are only built when something reads them."""

    def __init__(
        self,
        name: str,
        documentation: str,
        kind: str,
        rows: list[_Row],
        lines: _Lines,
        label: str,
        created: _Lines | None = None,
    ) -> None:
        super().__init__(name, documentation, kind)
        self._rows = rows
        self._lines = lines
        self._label = label
        self._created = created
        self._built: list[Sample] | None = None

    @property
    def samples(self) -> list[Sample]:
        if self._built is None:
            self._built = [
                Sample(sample_name, labels, value) for sample_name, labels, value in self._each()
            ]
        return self._built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._built = value or None  # Metric.__init__ assigns [] first

    def _parts(self) -> list[tuple[str, str, _Lines]]:
        suffix = "_total" if self.type == "counter" else ""
        parts = [(self.name + suffix, self.type, self._lines)]
        if self._created is not None:
            parts.append((self.name + "_created", "gauge", self._created))
        return parts

    def _each(self) -> Iterator[tuple[str, dict[str, str], float]]:
        for sample_name, _, lines in self._parts():
            for row in self._rows:
                for extra, value in lines(row):
                    labels = {"namespace": row.namespace, "name": row.name}
                    if extra is not None:
                        labels[self._label] = _unquote(extra)
                    yield sample_name, labels, value

    def text_pieces(self) -> Iterator[str]:
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        for sample_name, kind, lines in self._parts():
            piece = [f"# HELP {sample_name} {doc}\n# TYPE {sample_name} {kind}\n"]
            for start in range(0, len(self._rows), ROWS_PER_PIECE):
                for row in self._rows[start : start + ROWS_PER_PIECE]:
                    for extra, value in lines(row):
                        labels = row.labels if extra is None else f"{row.labels},{extra}"
                        piece.append(f"{sample_name}{{{labels}}} {_go_float(value)}\n")
                yield "".join(piece)
                piece = []
            if piece:
                yield "".join(piece)


def _unquote(extra: str) -> str:
    """The value of a 'label="value"' written by the line functions (values we chose)."""
    return extra.split("=", 1)[1][1:-1]


def _counted(
    probes: tuple[tuple[str, float, float], ...], result: str
) -> tuple[tuple[str, float, float], ...]:
    """``probes`` with one more probe of ``result`` (first seen now: created now)."""
    for i, (seen, count, created) in enumerate(probes):
        if seen == result:
            return (*probes[:i], (seen, count + 1.0, created), *probes[i + 1 :])
    return (*probes, (result, 1.0, time.time()))


class MonitorSeries:
    """The per-monitor families, as a collector over one row per monitor."""

    FAMILIES = (
        ("tcpmonitor_probe_success", "1 if the last probe was Up or Degraded, else 0.", "gauge"),
        ("tcpmonitor_state", "1 for the monitor's current state, 0 for the others.", "gauge"),
        (
            "tcpmonitor_probe_phase_duration_seconds",
            "Duration of each phase of the last probe; absent for a phase not performed.",
            "gauge",
        ),
        ("tcpmonitor_probes", "Probes by verdict (Up, Degraded, Down).", "counter"),
        (
            "tcpmonitor_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the target's certificate, also when it failed verification.",
            "gauge",
        ),
        (
            "tcpmonitor_tls_chain_expiry_timestamp_seconds",
            "Earliest notAfter across the certificates the target presented (leaf, "
            "intermediates, a root it sends), also when it failed verification.",
            "gauge",
        ),
    )
    _LINES: tuple[tuple[_Lines, str, _Lines | None], ...] = (
        (_success, "", None),
        (_state, "state", None),
        (_phases, "phase", None),
        (_probes, "result", _probes_created),
        (_cert_expiry, "", None),
        (_chain_expiry, "", None),
    )

    def __init__(self) -> None:
        self._rows: dict[Key, _Row] = {}
        self._lock = threading.Lock()  # the render thread copies the rows the loop changes

    def row(self, key: Key) -> _Row:
        row = self._rows.get(key)
        if row is None:
            namespace, name = key
            row = _Row(namespace, name, f'name="{_escape(name)}",namespace="{_escape(namespace)}"')
            with self._lock:
                self._rows[key] = row
        return row

    def forget(self, key: Key) -> None:
        with self._lock:
            self._rows.pop(key, None)

    def describe(self) -> list[Metric]:
        return [Metric(name, doc, kind) for name, doc, kind in self.FAMILIES]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            rows = list(self._rows.values())
        for (name, doc, kind), (lines, label, created) in zip(
            self.FAMILIES, self._LINES, strict=True
        ):
            yield _Family(name, doc, kind, rows, lines, label, created)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.monitors = MonitorSeries()
        r.register(self.monitors)
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
            ("namespace", "name", "reason"),
            registry=r,
        )
        self.retries_dropped = Counter(
            "tcpmonitor_probe_retries_dropped",
            "Re-tries (spec.retries) of failed probes not made because they could not have "
            "ended within the monitor's interval.",
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
        self.status_writes_queued = Gauge(
            "tcpmonitor_status_writes_queued",
            "Status writes waiting to be sent (one per monitor at most; grows while the API "
            "server refuses or is away).",
            registry=r,
        )
        self.status_write_retries = Counter(
            "tcpmonitor_status_write_retries",
            "Failed status writes tried again (with back-off, the newest body of the monitor).",
            registry=r,
        )
        self.status_patch_bytes = Counter(
            "tcpmonitor_status_patch_bytes",
            "Bytes of the status writes sent to the API server (request bodies as JSON).",
            registry=r,
        )
        self.status_transitions_coalesced = Counter(
            "tcpmonitor_status_transitions_coalesced",
            "State changes not written on their own because more were waiting than the bound "
            "(status writes failing for long while targets flap); Events still tell them.",
            registry=r,
        )
        self.status_last_success = Gauge(
            "tcpmonitor_status_last_success_timestamp_seconds",
            "When a status write last succeeded (Unix time; 0 before the first). With writes "
            "queued, time() minus this is how long the status shown by kubectl has been stale.",
            registry=r,
        )
        self.api_errors = Counter(
            "tcpmonitor_api_errors",
            "Requests to the API server that failed, by operation (status, event, lease, read, "
            "watch) and reason (unreachable, timeout, throttled, forbidden, server_error, ...).",
            ("operation", "reason"),
            registry=r,
        )
        self.watch_restarts = Counter(
            "tcpmonitor_watch_restarts",
            "Watch streams of TcpMonitors started again, by reason: expired (410 Gone: the "
            "resource version was compacted, a full list follows) or failed (the request failed "
            "after its retries).",
            ("reason",),
            registry=r,
        )
        self.api_ready = Gauge(
            "tcpmonitor_api_ready",
            "1 when the last read of the watched TcpMonitors succeeded, 0 when it failed "
            "(API server away, throttled, or RBAC missing); /readyz answers the same.",
            registry=r,
        )
        self.events_dropped = Counter(
            "tcpmonitor_events_dropped",
            "Events given up: refused for good, unposted after ten minutes, or over the bound "
            "of Events waiting to be posted.",
            ("reason",),
            registry=r,
        )
        self.events_posted = Counter(
            "tcpmonitor_events_posted",
            "Kubernetes Events posted (accepted by the API server; standalone: printed), by "
            "reason.",
            ("reason",),
            registry=r,
        )
        self.events_left_to_controller = Counter(
            "tcpmonitor_events_left_to_controller",
            "Events a runner only logged: the controller, which sees every location, posts "
            "them for the aggregated verdict. By reason.",
            ("reason",),
            registry=r,
        )

    def observe(self, key: Key, result: ProbeResult, state: MonitorState) -> None:
        row = self.monitors.row(key)
        row.success = 0.0 if result.state is Verdict.DOWN else 1.0
        row.probes = _counted(row.probes, result.state.value)
        timings = result.timings
        row.phases = tuple(
            None if (value := getattr(timings, phase)) is None else value / 1000 for phase in PHASES
        )
        cert = result.tls.certificate if result.tls else None
        if cert is not None:
            row.cert_expiry = cert.not_after.timestamp()
        chain_expiry = result.tls.chain_expiry if result.tls else None
        if chain_expiry is not None:
            row.chain_expiry = chain_expiry.timestamp()
        row.state = state.value

    def set_state(self, key: Key, state: MonitorState) -> None:
        self.monitors.row(key).state = state.value

    def skipped(self, key: Key, reason: str) -> None:
        self.probes_skipped.labels(reason).inc()
        self.monitor_probes_skipped.labels(*key, reason).inc()

    def forget(self, key: Key) -> None:
        """Remove every series of a deleted monitor."""
        self.monitors.forget(key)
        for reason in SKIP_REASONS:
            with contextlib.suppress(KeyError):
                self.monitor_probes_skipped.remove(*key, reason)
