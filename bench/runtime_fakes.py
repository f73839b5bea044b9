"""What a bench gives a MonitorRuntime instead of a cluster: a reporter that only counts and a
resolver for specs without references. The benches measure probing, not reporting."""

from __future__ import annotations

from tcpmonitor.api import TcpMonitorSpec
from tcpmonitor.probe import ProbeMaterial
from tcpmonitor.reporting import EventSpec
from tcpmonitor.scheduling.runtime import MonitorRef, StatusReport


class CountingReporter:
    def __init__(self) -> None:
        self.writes = 0
        self.events = 0

    def write_status(self, ref: MonitorRef, report: StatusReport, *, urgent: bool) -> None:
        self.writes += 1

    def post_event(self, ref: MonitorRef, event: EventSpec) -> None:
        self.events += 1

    def forget(self, ref: MonitorRef) -> None:
        pass


class NoReferences:
    async def resolve(self, spec: TcpMonitorSpec, namespace: str) -> ProbeMaterial:
        return ProbeMaterial()
