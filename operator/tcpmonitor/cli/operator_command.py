"""``tcpmonitor operator``: watch TcpMonitors in a cluster and report in their status."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .logging_setup import configure_logging
from .run_command import add_runtime_options, runtime_settings


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "operator",
        help="run the operator against a cluster",
        description="Watch TcpMonitors (all namespaces, or those given with --namespace), probe "
        "them on their intervals and report in status, Events and metrics. Credentials: the "
        "pod's service account in a cluster, else --kubeconfig, $KUBECONFIG or ~/.kube/config.",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; default: all namespaces)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or usual)")
    # All interfaces by default: in a pod, Prometheus scrapes the pod IP.
    add_runtime_options(parser, default_address="0.0.0.0")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `tcpmonitor probe` does not pay for importing kopf.
    from ..kube.operator import OperatorOptions, run_operator  # noqa: PLC0415

    settings = runtime_settings(args)
    configure_logging(args.log_level, args.log_format)
    return asyncio.run(
        run_operator(
            OperatorOptions(
                namespaces=args.namespace,
                kubeconfig=args.kubeconfig,
                metrics_address=args.metrics_address,
                metrics_port=args.metrics_port,
                settings=settings,
            )
        )
    )
