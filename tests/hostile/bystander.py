"""An unrelated, well-behaved monitor's target that proves a hostile neighbour hurt nobody.

Every hostile-input test runs one next to the attack: a loopback listener that timestamps each
accepted connection. The good monitor probes it on a short interval; afterwards the test asks
whether the probes kept coming on time (enough of them, no gap much longer than the interval).
Connection times seen by the target are what a user would see, whatever the runtime believes.
"""

from __future__ import annotations

import itertools
from typing import Any

from .listeners import Listener, close_at_once


class Bystander(Listener):
    """A counting listener on 127.0.0.1 that closes each connection at once; ``accepts`` are
    the monotonic times of the probes it got."""

    def __init__(self) -> None:
        super().__init__(close_at_once, backlog=64)

    def __enter__(self) -> Bystander:
        return self

    def monitor(
        self, name: str = "bystander", namespace: str = "good", **spec: Any
    ) -> dict[str, Any]:
        """A TcpMonitor manifest (a dict) that probes this listener every second."""
        spec = {"host": "127.0.0.1", "port": self.port, "interval": "1s", "timeout": "500ms"} | spec
        return {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitor",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }

    def since(self, start: float) -> list[float]:
        return [t for t in self.accepts if t >= start]

    def lateness(self, interval: float, start: float = 0.0) -> list[float]:
        """How much later than one interval each probe came after the one before (seconds).

        Gaps, not absolute slots: the first probe of a monitor is immediate and the next one
        joins its phase, so only the spacing of probes after the first says whether the
        schedule held."""
        times = self.since(start)
        return [max(0.0, b - a - interval) for a, b in itertools.pairwise(times[1:])]

    def assert_on_time(
        self, interval: float, *, window: float, start: float = 0.0, max_late: float = 0.5
    ) -> dict[str, float]:
        """The good monitor was probed about ``window / interval`` times, none late by more
        than ``max_late`` seconds. Returns the figures (count, p99 and max lateness)."""
        times = self.since(start)
        late = sorted(self.lateness(interval, start))
        expected = window / interval
        assert len(times) >= expected * 0.7 - 1, (
            f"bystander probed {len(times)} times in {window:.1f}s, expected about {expected:.0f}"
        )
        worst = late[-1] if late else 0.0
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else 0.0
        assert worst <= max_late, f"bystander probe came {worst:.3f}s late (bound {max_late}s)"
        return {"count": float(len(times)), "p99": p99, "max": worst}
