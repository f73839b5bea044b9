"""A replica that loses its Lease steps down and later takes over again, without a restart."""

from __future__ import annotations

import asyncio

from tcpmonitor.api import TcpMonitor
from tcpmonitor.kube.operator import LeaderGatedSink
from tcpmonitor.scheduling.runtime import Key, MonitorRef


def monitor(name: str, port: int = 1) -> TcpMonitor:
    return TcpMonitor.model_validate(
        {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitor",
            "metadata": {"name": name, "namespace": "ns", "uid": name},
            "spec": {"host": "127.0.0.1", "port": port, "interval": "10s"},
        }
    )


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def apply(self, m: TcpMonitor) -> None:
        self.calls.append(("apply", f"{m.metadata.name}:{m.spec.port}"))

    def remove(self, key: Key) -> None:
        self.calls.append(("remove", key[1]))

    def invalid(self, ref: MonitorRef, message: str) -> None:
        self.calls.append(("invalid", ref.name))


def test_a_replica_that_steps_down_forwards_nothing_and_takes_over_with_the_newest() -> None:
    async def scenario() -> list[tuple[str, str]]:
        inner = Recording()
        sink = LeaderGatedSink(inner)
        await sink.apply(monitor("a"))
        await sink.apply(monitor("b"))
        sink.step_down()
        await sink.apply(monitor("a", port=2))  # changed while another replica leads
        sink.remove(("ns", "b"))  # deleted meanwhile
        sink.invalid(MonitorRef("ns", "c", "c"), "bad")
        await sink.apply(monitor("d"))
        await sink.take_over()
        return inner.calls

    calls = asyncio.run(scenario())
    assert calls == [
        ("apply", "a:1"),
        ("apply", "b:1"),
        ("remove", "a"),
        ("remove", "b"),
        ("apply", "a:2"),
        ("apply", "d:1"),
    ]
