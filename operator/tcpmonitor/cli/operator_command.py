"""``tcpmonitor operator``: watch TcpMonitors in a cluster and report in their status."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kopf is imported only when the command runs
    from ..kube.process import ProcessOptions

from ..api import DurationError, parse_duration
from ..policy import PolicyBook
from .arguments import Commands
from .logging_setup import configure_logging
from .run_command import (
    add_default_action_option,
    add_runtime_options,
    allowed_targets,
    runtime_settings,
)


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "operator",
        help="run the operator against a cluster",
        description="Watch TcpMonitors (all namespaces, or those given with --namespace), probe "
        "them on their intervals and report in status, Events and metrics. Credentials: the "
        "pod's service account in a cluster, else --kubeconfig, $KUBECONFIG or ~/.kube/config.",
    )
    parser.add_argument(
        "--mode",
        choices=["all-in-one", "controller"],
        default="all-in-one",
        help="all-in-one: this process also probes (default); controller: runners probe, this "
        "process aggregates their locations",
    )
    parser.add_argument(
        "--leader-election",
        action="store_true",
        help="act only while holding the controller Lease (run 2 replicas)",
    )
    add_cluster_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `tcpmonitor probe` does not pay for importing kopf.
    from ..kube.operator import run_operator  # noqa: PLC0415

    options = process_options(args)
    configure_logging(args.log_level, args.log_format)
    return asyncio.run(run_operator(options, mode=args.mode, leader_election=args.leader_election))


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """What every process against a cluster takes: scope, credentials, Leases, runtime."""
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; default: all namespaces)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or usual)")
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Leases ($POD_NAMESPACE or default)",
    )
    parser.add_argument(
        "--identity",
        default=None,
        help="this process's name in Leases and Events (default: $POD_NAME, else host-pid)",
    )
    parser.add_argument(
        "--lease-duration",
        default="15s",
        help="Lease duration: how long a dead process holds its share",
    )
    add_default_action_option(parser)
    parser.add_argument(
        "--no-policy-watch",
        action="store_true",
        help="do not read TcpMonitorPolicies and namespaces (no cluster-wide permission): "
        "only the built-in refusals and --target-default-action apply",
    )
    # All interfaces by default: in a pod, Prometheus scrapes the pod IP.
    add_runtime_options(parser, default_address="0.0.0.0")


def process_options(args: argparse.Namespace) -> ProcessOptions:
    from ..kube.process import ProcessOptions  # noqa: PLC0415

    try:
        duration = parse_duration(args.lease_duration)
    except DurationError as exc:
        raise ValueError(f"--lease-duration: {exc}") from None
    options = ProcessOptions(
        namespaces=args.namespace,
        kubeconfig=args.kubeconfig,
        metrics_address=args.metrics_address,
        metrics_port=args.metrics_port,
        settings=runtime_settings(args),
        lease_namespace=args.lease_namespace,
        lease_duration=max(duration, 3.0),
    )
    if args.identity:
        options.identity = args.identity
    # Always a target policy against a cluster: the built-in refusals hold even with no
    # TcpMonitorPolicy, and policies created later act without a restart.
    options.policy = PolicyBook(
        deny_uncovered=args.target_default_action == "Deny",
        allowed=allowed_targets(args.allow_target),
    )
    options.watch_policies = not args.no_policy_watch
    return options
