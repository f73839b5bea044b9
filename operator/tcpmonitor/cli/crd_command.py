"""``tcpmonitor crd``: print the CRD generated from the API models."""

from __future__ import annotations

import argparse
import sys

from ..api.crd import render_crd_yaml, render_policy_crd_yaml
from .arguments import Commands


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "crd", help="print the TcpMonitor CustomResourceDefinition YAML"
    )
    parser.add_argument(
        "--policy",
        action="store_true",
        help="print the cluster-scoped TcpMonitorPolicy CRD instead",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(render_policy_crd_yaml() if args.policy else render_crd_yaml())
    return 0
