"""The cluster's bad days, measured: recovery, writes after recovery, memory, for both modes.

Runs the fault scenarios of tests/e2e/faults on a control plane of its own (built and cached
like the e2e tests') with longer windows than the suite: writes are counted for five minutes
after each repair, and the API server is also killed for five minutes to show that memory does
not grow with an outage. Prints one table; the README and the closing note quote it.

    python bench/cluster_faults.py                 # every fault, about 40 minutes
    python bench/cluster_faults.py --after 60 --only apiserver-30s,etcd
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from tests.controlplane import ControlPlane, ensure_binaries  # noqa: E402
from tests.e2e.faults.conftest import OPERATOR_ACCOUNT  # noqa: E402
from tests.e2e.faults.identities import service_account_kubeconfig  # noqa: E402
from tests.e2e.faults.proxy import ApiProxy  # noqa: E402
from tests.e2e.faults.scenario import Deployment, Figures, run_fault, table  # noqa: E402
from tests.e2e.faults.throttling import throttle  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--after", type=float, default=300.0, help="seconds of writes counted")
    parser.add_argument("--steady", type=int, default=20, help="monitors that stay Up")
    parser.add_argument("--only", default="", help="comma-separated fault names")
    args = parser.parse_args()

    plane = ControlPlane(ensure_binaries())
    cluster = plane.start()
    rows: list[Figures] = []
    with (
        tempfile.TemporaryDirectory(prefix="tcpmonitor-bench-faults-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        stack.callback(plane.stop)
        plane.install_crds()
        plane.cluster.allow_loopback_targets()
        kubeconfig = work / "operator.kubeconfig"
        service_account_kubeconfig(
            cluster, *OPERATOR_ACCOUNT, kubeconfig, cluster_admin=True, duration="3h"
        )
        proxy = stack.enter_context(ApiProxy(cluster.server()))
        runner_1 = proxy.kubeconfig(kubeconfig, work / "runner-1.kubeconfig")
        (work / "logs").mkdir()
        d = Deployment(
            cluster,
            work / "logs",
            kubeconfig,
            steady=args.steady,
            runner_kubeconfigs={"runner-1": runner_1},
        )
        stack.callback(d.close)
        d.start()
        d.wait_correct(60)
        d.steady_per_min = d.write_rate(60.0)
        throttling = contextlib.ExitStack()
        faults: dict[
            str, tuple[Callable[[], object], Callable[[], object], float, tuple[str, ...]]
        ] = {
            "apiserver-30s": (plane.kill_apiserver, plane.start_apiserver, 30.0, ()),
            "apiserver-2min": (plane.kill_apiserver, plane.start_apiserver, 120.0, ()),
            "apiserver-5min": (plane.kill_apiserver, plane.start_apiserver, 300.0, ()),
            "etcd": (plane.kill_etcd, plane.start_etcd, 20.0, ()),
            "throttled": (
                lambda: throttling.enter_context(throttle(cluster, OPERATOR_ACCOUNT)),
                throttling.close,
                30.0,
                (),
            ),
            "runner-cut-off": (proxy.cut, proxy.heal, 20.0, ()),
            "controller-killed": (
                d.processes["controller-a"].process.kill,
                lambda: None,
                20.0,
                ("controller-a",),
            ),
        }
        chosen = [f for f in args.only.split(",") if f] or [*faults, "expire-watches"]
        for name in (f for f in chosen if f in faults):
            begin, end, duration, down = faults[name]
            began = time.monotonic()
            rows.append(
                run_fault(
                    d, name, begin, end, duration, after_window=args.after, expected_down=down
                )
            )
            last = rows[-1]
            took = time.monotonic() - began
            print(f"# {name}: {took:.0f} s; lost {last.lost}; crashed {last.crashed}", flush=True)
        if "expire-watches" in chosen:
            ready = plane.expire_watches()
            correct = d.wait_correct(60)
            print(f"# expire-watches: API server ready in {ready:.1f} s; correct in {correct}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
