"""Both deployment modes side by side on one control plane, and what a fault does to them.

One fault is seen by both modes at once, so an outage costs the suite its duration once: the
all-in-one operator watches one namespace; a controller (with a standby) and two runners of
location ``eu`` watch another. Their monitors probe the same loopback targets, which the
scenario takes down and up while the fault lasts:

- ``dies`` goes down and stays down; ``returns`` comes up and stays up (both toggle again in
  the next fault);
- ``flaps`` goes down for ten seconds (five intervals) and comes back, all inside the fault:
  the transition that is lost when nothing keeps it;
- ``steady-N`` stay up: the load that tells whether recovery is a write storm.

``run_fault`` measures what the issue asks for: time from the repair to a correct status in
each mode, writes per minute after the repair next to the steady rate, memory of each process
across the fault, the write backlog's peak, the Events of every transition, and crashes. The
fault tests assert on these figures; ``bench/cluster_faults.py`` prints them as a table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.controlplane import Cluster
from tests.e2e.operator_process import Listener, OperatorProcess, apply, tcpmonitor

INTERVAL = 2.0
LEASE = "6s"
HEARTBEAT = "10s"
LOCATION = "eu"
MODES = ("all-in-one", "distributed")
CHANGING = ("dies", "returns", "flaps")
FLAP_DOWN_AT = 3.0
FLAP_UP_AT = 13.0


def _poll(deadline: float, step: float = 0.5) -> None:
    time.sleep(max(0.0, min(step, deadline - time.monotonic())))


@dataclass
class Figures:
    """What one fault did, per mode (recovery, writes) and per process (memory, backlog)."""

    fault: str
    duration: float
    recovery: dict[str, float] = field(default_factory=dict)
    steady_per_min: dict[str, float] = field(default_factory=dict)
    after_per_min: dict[str, float] = field(default_factory=dict)
    rss_before_kb: dict[str, int] = field(default_factory=dict)
    rss_after_kb: dict[str, int] = field(default_factory=dict)
    backlog_peak: dict[str, float] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    # Every wanted Event came, in order, but more came too (reported, not a loss).
    extra: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)

    def write_ratio(self, mode: str) -> float:
        return self.after_per_min[mode] / max(self.steady_per_min[mode], 1e-9)

    def rss_growth_kb(self) -> dict[str, int]:
        return {p: self.rss_after_kb[p] - self.rss_before_kb[p] for p in self.rss_after_kb}


class Deployment:
    """The processes of both modes and their monitors; ``close`` stops everything."""

    def __init__(
        self,
        cluster: Cluster,
        log_dir: Path,
        kubeconfig: Path,
        *,
        steady: int = 20,
        runner_kubeconfigs: dict[str, Path] | None = None,
        tag: str = "f",
    ) -> None:
        self.cluster = cluster
        self.log_dir = log_dir
        self.kubeconfig = kubeconfig
        self.runner_kubeconfigs = runner_kubeconfigs or {}
        self.namespaces = {"all-in-one": f"{tag}-aio", "distributed": f"{tag}-dist"}
        self.processes: dict[str, OperatorProcess] = {}
        self.targets = {name: Listener() for name in (*CHANGING, "steady")}
        self.steady = steady
        # The state each monitor should reach: the targets' current truth.
        self.expected: dict[str, str] = {}
        self._up: dict[str, bool] = {}
        self.steady_per_min: dict[str, float] | None = None  # measured once, settled

    # -- set-up ---------------------------------------------------------------------------

    def monitor_names(self) -> list[str]:
        return [*CHANGING, *(f"steady-{i}" for i in range(self.steady))]

    def target_of(self, monitor: str) -> str:
        return "steady" if monitor.startswith("steady-") else monitor

    def start(self) -> Deployment:
        for namespace in self.namespaces.values():
            self.cluster.kubectl("create", "namespace", namespace, check=True)
        for name, listener in self.targets.items():
            if name != "returns":  # starts down, comes up in the first fault
                listener.start()
            self._up[name] = name != "returns"
        self.processes["operator"] = self._process(
            "operator", "all-in-one", "--namespace", self.namespaces["all-in-one"]
        )
        distributed = self.namespaces["distributed"]
        common = ["--namespace", distributed, "--lease-namespace", distributed]
        common += ["--lease-duration", LEASE]
        for identity in ("controller-a", "controller-b"):
            self.processes[identity] = self._process(
                identity,
                "controller",
                *common,
                "--mode",
                "controller",
                "--leader-election",
                wait_ready=identity == "controller-a",
            )
        for identity in ("runner-1", "runner-2"):
            self.processes[identity] = self._process(
                identity, "runner", *common, "--location", LOCATION
            )
        objects = []
        for mode, namespace in self.namespaces.items():
            for name in self.monitor_names():
                port = self.targets[self.target_of(name)].port
                spec: dict[str, Any] = {"port": port, "interval": f"{INTERVAL:g}s"}
                if mode == "distributed":
                    spec["locations"] = [LOCATION]
                objects.append(tcpmonitor(namespace, name, **spec))
        apply(self.cluster, *objects)
        self.expected = {name: self._truth(name) for name in self.monitor_names()}
        return self

    def _process(
        self, identity: str, role: str, *extra: str, wait_ready: bool = True
    ) -> OperatorProcess:
        command = "runner" if role == "runner" else "operator"
        kubeconfig = self.runner_kubeconfigs.get(identity, self.kubeconfig)
        return OperatorProcess(
            self.cluster,
            self.log_dir,
            *extra,
            "--identity",
            identity,
            "--heartbeat",
            HEARTBEAT,
            kubeconfig=kubeconfig,
            command=command,
            wait_ready=wait_ready,
        )

    def close(self) -> None:
        for process in self.processes.values():
            process.stop()
        for listener in self.targets.values():
            listener.stop()

    # -- the targets ---------------------------------------------------------------------

    def _truth(self, monitor: str) -> str:
        return "Up" if self._up[self.target_of(monitor)] else "Down"

    def set_target(self, name: str, up: bool) -> None:
        if self._up[name] == up:
            return
        listener = self.targets[name]
        listener.start() if up else listener.stop()
        self._up[name] = up
        for monitor in self.monitor_names():
            if self.target_of(monitor) == name:
                self.expected[monitor] = self._truth(monitor)

    # -- what the cluster shows ----------------------------------------------------------

    def states(self) -> dict[str, dict[str, str]] | None:
        """mode -> monitor -> state, from one list; None while the API server is away."""
        result = self.cluster.kubectl("get", "tcpmonitors", "-A", "-o", "json")
        if result.returncode != 0:
            return None
        by_namespace = {ns: mode for mode, ns in self.namespaces.items()}
        out: dict[str, dict[str, str]] = {mode: {} for mode in MODES}
        for item in json.loads(result.stdout)["items"]:
            mode = by_namespace.get(item["metadata"]["namespace"])
            if mode is not None:
                out[mode][item["metadata"]["name"]] = (item.get("status") or {}).get("state", "")
        return out

    def wait_correct(self, timeout: float) -> dict[str, float]:
        """Seconds until each mode's status shows every expected state (inf: never)."""
        began = time.monotonic()
        deadline = began + timeout
        reached: dict[str, float] = {}
        while len(reached) < len(MODES) and time.monotonic() < deadline:
            states = self.states()
            for mode in MODES:
                if mode not in reached and states and states[mode] == self.expected:
                    reached[mode] = time.monotonic() - began
            _poll(deadline, 0.25)
        return {mode: reached.get(mode, float("inf")) for mode in MODES}

    def event_reasons(self, mode: str, monitor: str) -> list[str]:
        """The monitor's Event reasons in time order (of the moment each happened)."""
        namespace = self.namespaces[mode]
        result = self.cluster.kubectl(
            "get", "events.events.k8s.io", "-n", namespace, "-o", "json", check=True
        )
        items = [e for e in json.loads(result.stdout)["items"] if e["regarding"]["name"] == monitor]
        return [e["reason"] for e in sorted(items, key=lambda e: e["eventTime"])]

    def transitions(self, mode: str, monitor: str) -> list[str]:
        return [r for r in self.event_reasons(mode, monitor) if r in ("TargetUp", "TargetDown")]

    # -- the processes -------------------------------------------------------------------

    def mode_of(self, process: str) -> str:
        return "all-in-one" if process == "operator" else "distributed"

    def writes(self) -> dict[str, float]:
        """Status write requests sent so far (accepted or not), per mode."""
        total = dict.fromkeys(MODES, 0.0)
        for name, process in self.processes.items():
            if process.process.poll() is not None:
                continue
            series = process.series("tcpmonitor_status_patches_total")
            total[self.mode_of(name)] += sum(series.values())
        return total

    def backlog(self) -> dict[str, float]:
        out = {}
        for name, process in self.processes.items():
            if process.process.poll() is None:
                out[name] = process.metric_value("tcpmonitor_status_writes_queued") or 0.0
        return out

    def rss_kb(self) -> dict[str, int]:
        out = {}
        for name, process in self.processes.items():
            try:
                text = Path(f"/proc/{process.process.pid}/status").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    out[name] = int(line.split()[1])
        return out

    def crashed(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.process.poll() is not None]

    def write_rate(self, window: float) -> dict[str, float]:
        """Writes per minute in each mode over the next ``window`` seconds."""
        before = self.writes()
        time.sleep(window)
        after = self.writes()
        return {mode: (after[mode] - before[mode]) * 60 / window for mode in MODES}


def run_fault(
    d: Deployment,
    fault: str,
    begin: Callable[[], None],
    end: Callable[[], None],
    duration: float,
    *,
    steady: dict[str, float] | None = None,
    steady_window: float = 30.0,
    after_window: float = 60.0,
    recovery_timeout: float = 90.0,
    expected_down: tuple[str, ...] = (),
) -> Figures:
    """Break the cluster with ``begin``, change the targets while it is broken, repair it with
    ``end`` after ``duration`` seconds, and measure the recovery.

    ``steady`` is the write rate measured before (measured here over ``steady_window`` when
    not given); ``expected_down`` names processes the fault itself stops (not crashes)."""
    figures = Figures(fault, duration)
    figures.steady_per_min = steady or d.steady_per_min or d.write_rate(steady_window)
    figures.rss_before_kb = d.rss_kb()
    events_before = {(m, n): d.transitions(m, n) for m in MODES for n in CHANGING}

    begin()
    began = time.monotonic()
    deadline = began + duration
    plan = [
        (FLAP_DOWN_AT, lambda: d.set_target("flaps", False)),
        (FLAP_DOWN_AT, lambda: d.set_target("dies", not d._up["dies"])),
        (FLAP_DOWN_AT, lambda: d.set_target("returns", not d._up["returns"])),
        (FLAP_UP_AT, lambda: d.set_target("flaps", True)),
    ]
    while time.monotonic() < deadline or plan:
        elapsed = time.monotonic() - began
        while plan and plan[0][0] <= elapsed:
            plan.pop(0)[1]()
        for name, value in d.backlog().items():
            figures.backlog_peak[name] = max(figures.backlog_peak.get(name, 0.0), value)
        _poll(deadline if not plan else began + plan[0][0], 1.0)
    figures.rss_after_kb = d.rss_kb()
    end()

    figures.recovery = d.wait_correct(recovery_timeout)
    writes_before = d.writes()
    time.sleep(after_window)
    writes_after = d.writes()
    figures.after_per_min = {
        mode: (writes_after[mode] - writes_before[mode]) * 60 / after_window for mode in MODES
    }
    # Every transition that held for at least failureThreshold intervals has its Event.
    for mode in MODES:
        for monitor in CHANGING:
            new = d.transitions(mode, monitor)[len(events_before[mode, monitor]) :]
            wanted = {
                "flaps": ["TargetDown", "TargetUp"],
                "dies": ["TargetUp" if d._up["dies"] else "TargetDown"],
                "returns": ["TargetUp" if d._up["returns"] else "TargetDown"],
            }[monitor]
            if not _in_order(wanted, new):
                figures.lost.append(f"{mode} {monitor}: Events {new}, expected {wanted}")
            elif new != wanted:
                figures.extra.append(f"{mode} {monitor}: Events {new}, expected {wanted}")
    figures.crashed = [name for name in d.crashed() if name not in expected_down]
    return figures


def _in_order(wanted: list[str], seen: list[str]) -> bool:
    """Whether ``wanted`` occurs in ``seen`` in order (with anything in between)."""
    remaining = iter(seen)
    return all(any(reason == got for got in remaining) for reason in wanted)


def table(rows: list[Figures]) -> str:
    """The figures as the bench prints them and the closing note quotes them."""
    head = (
        f"{'fault':<28} {'mode':<11} {'recovery s':>10} {'writes/min':>10} {'steady':>7} "
        f"{'ratio':>6} {'lost':>4} {'backlog':>7} {'RSS +MB':>8}"
    )
    lines = [head, "-" * len(head)]
    for f in rows:
        growth = f.rss_growth_kb()
        for mode in MODES:
            procs = [p for p in growth if (p == "operator") == (mode == "all-in-one")]
            peak = max((f.backlog_peak.get(p, 0.0) for p in procs), default=0.0)
            rss = max((growth[p] for p in procs), default=0) / 1024
            lost = sum(1 for entry in f.lost if entry.startswith(mode))
            lines.append(
                f"{f.fault:<28} {mode:<11} {f.recovery[mode]:>10.1f} "
                f"{f.after_per_min[mode]:>10.1f} {f.steady_per_min[mode]:>7.1f} "
                f"{f.write_ratio(mode):>6.2f} {lost:>4} {peak:>7.0f} {rss:>8.1f}"
            )
    return "\n".join(lines)
