"""Hostile schedules: slot hogging and a monitor whose probing raises, next to a good monitor.

Every case runs the bystander (a good monitor in namespace "good", probed every second) beside
the attack and asserts it kept its schedule. All traffic stays on 127.0.0.1 and every load is
bounded in count and time.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path
from typing import Any

from tcpmonitor.api import ProbeResult, TcpMonitor, TcpMonitorSpec, TcpMonitorStatus
from tcpmonitor.probe import ProbeMaterial, ProbePlan, run_probe
from tcpmonitor.reporting import EventSpec
from tcpmonitor.scheduling.runtime import MonitorRef, MonitorRuntime, RuntimeSettings, StatusReport
from tcpmonitor.telemetry.metrics import Metrics

from .bystander import Bystander
from .listeners import Listener, never_answer
from .standalone import standalone, write_manifests

HOGS = 300  # more than the default --max-concurrency of 256
WINDOW = 12.0  # seconds of bystander probing observed


def hog(name: str, port: int) -> dict[str, Any]:
    """A monitor that holds a probe slot for its whole 30 s timeout: the target never answers
    and the assertion needs data, so the probe waits until the timeout runs out."""
    return {
        "apiVersion": "tcpmonitor.dev/v1alpha1",
        "kind": "TcpMonitor",
        "metadata": {"name": name, "namespace": "hostile"},
        "spec": {
            "host": "127.0.0.1",
            "port": port,
            "interval": "30s",
            "timeout": "30s",
            "assertions": [{"source": "ResponseData", "comparison": "Contains", "target": "x"}],
        },
    }


def test_hundreds_of_slot_hogs_in_one_namespace_do_not_starve_another(tmp_path: Path) -> None:
    with Bystander() as bystander, Listener(never_answer, max_held=4 * HOGS) as hole:
        docs = [hog(f"hog-{i}", hole.port) for i in range(HOGS)]
        path = write_manifests(tmp_path / "monitors.yaml", *docs, bystander.monitor())
        with standalone("-f", str(path), logs=tmp_path / "run.log") as (_, port):
            start = time.monotonic()
            time.sleep(WINDOW)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as health:
                assert health.status == 200
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                metrics = page.read().decode()
        figures = bystander.assert_on_time(1.0, window=WINDOW, start=start)
    assert figures["count"] >= WINDOW - 2, figures
    # The hostile namespace got its cap (three quarters of 256), no more; the bystander may be
    # in flight too.
    line = next(x for x in metrics.splitlines() if x.startswith("tcpmonitor_probes_in_flight "))
    assert 192 <= float(line.split()[1]) <= 193, line


class MemoryReporter:
    def __init__(self) -> None:
        self.statuses: dict[str, TcpMonitorStatus] = {}
        self.events: list[tuple[str, EventSpec]] = []

    def write_status(self, ref: MonitorRef, report: StatusReport, *, urgent: bool) -> None:
        self.statuses[ref.name] = report.status

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        self.events.append((ref.name, event))

    def forget(self, ref: MonitorRef) -> None:
        self.statuses.pop(ref.name, None)


class NoReferences:
    async def resolve(self, spec: TcpMonitorSpec, namespace: str) -> ProbeMaterial:
        return ProbeMaterial()


def test_a_probe_that_raises_for_one_monitor_leaves_the_others_on_time() -> None:
    reporter = MemoryReporter()
    window = 5.0

    with Bystander() as bystander:
        bad_port = bystander.port + 1 if bystander.port < 65535 else 1

        async def probe(plan: ProbePlan) -> ProbeResult:
            if plan.port == bad_port:
                raise ZeroDivisionError("a bug that only this monitor's spec reaches")
            return await run_probe(plan)

        async def scenario() -> float:
            rt = MonitorRuntime(reporter, NoReferences(), Metrics(), RuntimeSettings(), probe=probe)
            bad = bystander.monitor("bad", namespace="hostile", port=bad_port)
            stored_before_the_bound = TcpMonitor.model_validate(bystander.monitor("zero"))
            zero = stored_before_the_bound.model_copy(
                update={
                    "spec": stored_before_the_bound.spec.model_copy(
                        update={"interval": "0s", "timeout": "0s"}
                    ),
                    "metadata": stored_before_the_bound.metadata.model_copy(
                        update={"namespace": "hostile"}
                    ),
                }
            )
            await rt.apply(TcpMonitor.model_validate(bad))
            await rt.apply(zero)
            await rt.apply(TcpMonitor.model_validate(bystander.monitor()))
            start = time.monotonic()
            await asyncio.sleep(window)
            assert rt.health()[0]
            await rt.close()
            return start

        start = asyncio.run(scenario())
        bystander.assert_on_time(1.0, window=window, start=start)

    def ready(name: str) -> tuple[str, str]:
        condition = next(c for c in reporter.statuses[name].conditions if c.type == "Ready")
        return condition.status, condition.reason

    assert ready("bad") == ("False", "ProbeError")
    assert ready("zero") == ("False", "IntervalTooShort")
    assert ready("bystander") == ("True", "Probing")
    reasons = [(name, e.reason) for name, e in reporter.events]
    assert reasons.count(("bad", "ProbeError")) == 1  # once, not every interval
    assert reasons.count(("zero", "InvalidSpec")) == 1
