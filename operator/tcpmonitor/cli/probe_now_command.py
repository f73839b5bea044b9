"""``tcpmonitor probe-now NAME``: have the cluster probe a monitor at once and print the result.

Like ``flux reconcile``: sets the ``tcpmonitor.dev/requestedAt`` annotation, waits until the
operator (or, with runners, every live location) has probed for it, and prints ``lastResult``
as ``tcpmonitor probe`` prints a result. Exit 0 when Up or Degraded, 1 when Down, 2 when the
request failed, timed out, or the monitor is not probed (paused, an unusable spec).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..api import DurationError, MonitorState, Verdict, parse_duration
from .arguments import Commands
from .render import render_result

EXIT_DOWN = 1
EXIT_FAILED = 2


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "probe-now",
        help="have the cluster probe a TcpMonitor at once and print the result",
        description="Set the tcpmonitor.dev/requestedAt annotation on the TcpMonitor, wait until "
        "its status says the request was handled (the operator, or a runner in each live "
        "location, probed it), and print status.lastResult. Exit 0 when Up or Degraded, 1 when "
        "Down, 2 on errors or timeout.",
    )
    parser.add_argument("name", help="the TcpMonitor's name")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or usual)")
    parser.add_argument(
        "--timeout", default="60s", help="how long to wait for the result (default 60s)"
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"tcpmonitor probe-now: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    try:
        timeout = parse_duration(args.timeout)
    except DurationError as exc:
        raise ValueError(f"--timeout: {exc}") from None
    # The Kubernetes client only for this command, as for `operator`.
    from ..kube.probe_request import ProbeRequestFailed, request_probe  # noqa: PLC0415

    try:
        handled = request_probe(
            args.namespace, args.name, kubeconfig=args.kubeconfig, timeout=timeout
        )
    except ProbeRequestFailed as exc:
        return _fail(str(exc))
    monitor = handled.monitor
    status = monitor.status
    result = status.last_result if status else None
    title = f"{args.namespace}/{args.name} ({monitor.spec.host}:{monitor.spec.port})"
    if result is None or (status is not None and status.state is MonitorState.PAUSED):
        state = status.state if status and status.state else "Unknown"
        message = status.message if status and status.message else "no result"
        return _fail(f"{title} was not probed: {state}: {message}")
    if args.output == "json":
        identity = {"namespace": args.namespace, "name": args.name}
        print(json.dumps([{**identity, **result.to_json_dict()}], indent=2))
    else:
        print(render_result(result, title))
    return EXIT_DOWN if result.state is Verdict.DOWN else 0
