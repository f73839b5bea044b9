"""Start the e2e control plane by hand, to poke at it with kubectl while debugging.

python -m tests.controlplane              # build if needed, start, wait for Ctrl-C
python -m tests.controlplane --build-only # just fill the binary cache (used by CI)
python -m tests.controlplane --demo       # ... and the operator at work on the examples
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from tests.controlplane.build import (
    BuildError,
    GoNotFoundError,
    bin_dir,
    ensure_binaries,
    kubernetes_version,
)
from tests.controlplane.cluster import CRD_DIR, KubectlError
from tests.controlplane.controlplane import ControlPlane
from tests.controlplane.demo import run_demo
from tests.controlplane.processes import StartupError


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    # Treat `kill <pid>` like Ctrl-C so the children are stopped in order.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.controlplane",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build the binaries into the cache if needed, then exit",
    )
    parser.add_argument(
        "--no-crds", action="store_true", help=f"don't install the CRDs from {CRD_DIR}"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also run the operator on the examples and two local targets, and stream "
        "`kubectl get tcpmonitors -A -w` (Ctrl-C stops everything)",
    )
    parser.add_argument(
        "--no-examples", action="store_true", help="with --demo: only the two local targets"
    )
    args = parser.parse_args(argv)

    try:
        binaries = ensure_binaries()
    except GoNotFoundError as error:
        print(f"error: {error}; install Go >= 1.26 from https://go.dev/dl/", file=sys.stderr)
        return 2
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.build_only:
        print(f"control-plane binaries {kubernetes_version()} ready in {bin_dir()}")
        return 0

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.monotonic()
    control_plane = ControlPlane(binaries)
    try:
        cluster = control_plane.start()
        try:
            crds = [] if args.no_crds else cluster.install_crds()
        except KubectlError as error:
            # Keep running: a rejected CRD is exactly what one starts this to debug.
            print(f"error: installing the CRDs failed: {error.stderr}", file=sys.stderr)
            crds = ["<failed, see above>"]
        print(f"control plane {kubernetes_version()} ready in {time.monotonic() - started:.1f}s")
        print(f"  API server:  {control_plane.server}")
        print(f"  kubeconfig:  {cluster.kubeconfig}")
        print(f"  kubectl:     {cluster.kubectl_binary}")
        print(f"  CRDs:        {', '.join(crds) or 'none'}")
        print(f"  logs:        {control_plane.workdir}/{{etcd,kube-apiserver}}.log")
        print()
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"alias kubectl={cluster.kubectl_binary}")
        print()
        if args.demo:
            assert control_plane.workdir is not None  # set by start()
            run_demo(cluster, control_plane.workdir, examples=not args.no_examples)
            return 0
        print("Ctrl-C stops it and deletes the directory above.", flush=True)
        while True:
            signal.pause()
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
        return 0
    finally:
        control_plane.stop()


if __name__ == "__main__":
    sys.exit(main())
