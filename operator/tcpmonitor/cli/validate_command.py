"""``tcpmonitor validate``: the API server's rules and the deeper ones, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..standalone.manifests import load_manifests
from .arguments import Commands


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "validate",
        help="validate TcpMonitor manifests offline",
        description="Check TcpMonitor manifests with the same schema and CEL rules the API "
        "server applies, plus rules only a probe would hit (regular expressions compile, "
        "base64 decodes). One line per problem: FILE:doc N: FIELD: MESSAGE.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.paths)
    for problem in manifests.problems:
        print(problem, file=sys.stdout)
    count = len(manifests.monitors)
    if manifests.problems:
        print(f"{len(manifests.problems)} problem(s); {count} valid TcpMonitor(s)", file=sys.stderr)
        return 1
    print(f"{count} valid TcpMonitor(s)", file=sys.stderr)
    return 0
