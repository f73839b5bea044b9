"""``tcpmonitor run -f PATH``: probe manifests from disk continuously, no cluster."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from pathlib import Path

from ..api import DurationError, parse_duration
from ..api.spec import MIN_INTERVAL_SECONDS
from ..scheduling.runtime import RuntimeSettings
from ..standalone.run import run_standalone
from .arguments import Commands
from .logging_setup import FORMATS, LEVELS, configure_logging


def add_runtime_options(parser: argparse.ArgumentParser, *, default_address: str) -> None:
    """Options shared by every long-running mode."""
    parser.add_argument(
        "--metrics-address",
        default=default_address,
        help=f"address for /metrics and /healthz (default {default_address})",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        help="port for /metrics and /healthz (default 8080)",
    )
    parser.add_argument(
        "--heartbeat",
        default="60s",
        help="status write interval when nothing changes (default 60s)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=256,
        help="probes running at once, at most (default 256)",
    )
    parser.add_argument(
        "--max-concurrency-per-namespace",
        type=int,
        default=None,
        help="probes of one namespace running at once, at most (default: three quarters of "
        "--max-concurrency, so the other namespaces always find slots)",
    )
    parser.add_argument(
        "--min-interval",
        default="1s",
        help="shortest spec.interval probed; a monitor below it is reported Ready=False "
        "IntervalTooShort and not probed (default 1s, the schema's minimum)",
    )
    parser.add_argument("--log-level", choices=LEVELS, default="info")
    parser.add_argument("--log-format", choices=FORMATS, default="text")


def runtime_settings(args: argparse.Namespace) -> RuntimeSettings:
    try:
        heartbeat = parse_duration(args.heartbeat)
    except DurationError as exc:
        raise ValueError(f"--heartbeat: {exc}") from None
    if heartbeat < 1:
        raise ValueError("--heartbeat: at least 1s")
    try:
        min_interval = parse_duration(args.min_interval)
    except DurationError as exc:
        raise ValueError(f"--min-interval: {exc}") from None
    if min_interval < MIN_INTERVAL_SECONDS:
        raise ValueError("--min-interval: at least 1s (the schema's minimum)")
    if not 1 <= args.max_concurrency <= 100_000:
        raise ValueError("--max-concurrency: between 1 and 100000")
    per_namespace = args.max_concurrency_per_namespace
    if per_namespace is not None and not 1 <= per_namespace <= args.max_concurrency:
        raise ValueError("--max-concurrency-per-namespace: between 1 and --max-concurrency")
    if not 0 <= args.metrics_port <= 65535:
        raise ValueError("--metrics-port: between 0 and 65535")
    return RuntimeSettings(
        heartbeat=heartbeat,
        max_concurrency=args.max_concurrency,
        max_concurrency_per_namespace=per_namespace,
        min_interval=min_interval,
    )


def add_policy_options(parser: argparse.ArgumentParser, *, default: str) -> None:
    """The target policy from files, for the modes without an API server to hold it."""
    parser.add_argument(
        "--policy",
        type=Path,
        action="append",
        metavar="PATH",
        help="TcpMonitorPolicy (and Namespace) YAML file or directory: refuse targets as the "
        "operator would, built-in refusals of link-local, metadata and loopback addresses "
        f"included (repeatable; default {default})",
    )
    add_default_action_option(parser)


def allowed_targets(values: list[str] | None) -> list[str]:
    """--allow-target CIDRs, checked; a bad one is a one-line error."""
    for value in values or []:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"--allow-target: {value!r} is not an address range") from None
    return list(values or [])


def add_default_action_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-target",
        action="append",
        metavar="CIDR",
        help="allow this address range for every namespace, also where the built-in refusals "
        "(link-local, metadata, loopback) apply; a TcpMonitorPolicy Deny still wins "
        "(repeatable)",
    )
    parser.add_argument(
        "--target-default-action",
        choices=["Allow", "Deny"],
        default="Allow",
        help="for namespaces no TcpMonitorPolicy covers: Allow (default; the built-in "
        "refusals still apply) or Deny (a shared cluster: only what a policy allows)",
    )


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="probe TcpMonitor manifests from disk continuously (no cluster)",
        description="Run the scheduler against TcpMonitor manifests on disk: transitions are "
        "logged as lines, metrics served on /metrics, health on /healthz. SIGHUP re-reads the "
        "files.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        type=Path,
        action="append",
        required=True,
        help="TcpMonitor YAML file or directory (repeatable)",
    )
    add_policy_options(parser, default="off: any target")
    add_runtime_options(parser, default_address="127.0.0.1")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = runtime_settings(args)
    configure_logging(args.log_level, args.log_format)
    return asyncio.run(
        run_standalone(
            args.filename,
            host=args.metrics_address,
            port=args.metrics_port,
            settings=settings,
            policy_paths=args.policy,
            deny_uncovered=args.target_default_action == "Deny",
            allowed=allowed_targets(args.allow_target),
        )
    )
