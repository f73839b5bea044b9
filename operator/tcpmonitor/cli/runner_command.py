"""``tcpmonitor runner --location NAME``: probe one location's share of the monitors."""

from __future__ import annotations

import argparse
import asyncio

from .arguments import Commands
from .logging_setup import configure_logging
from .operator_command import add_cluster_options, process_options


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "runner",
        help="probe the monitors of one location (with an operator in --mode controller)",
        description="Hold a Lease in the location, take the monitors rendezvous hashing gives "
        "this runner among the location's live runners, probe them, and write the location's "
        "entry of status.locations.",
    )
    parser.add_argument("--location", required=True, help="location name, e.g. eu-west")
    parser.add_argument(
        "--write-budget",
        type=float,
        default=20.0,
        help="status writes per second at most (default 20)",
    )
    add_cluster_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..kube.runner import run_runner  # noqa: PLC0415 - kopf only when needed

    options = process_options(args)
    if args.write_budget <= 0:
        raise ValueError("--write-budget: must be positive")
    configure_logging(args.log_level, args.log_format)
    return asyncio.run(run_runner(options, location=args.location, write_budget=args.write_budget))
