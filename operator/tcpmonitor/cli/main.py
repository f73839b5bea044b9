"""Entry point and sub-command wiring; each command lives in its own module.

Exit status: 0 when everything is Up or Degraded (or valid), 1 when anything is Down (or
invalid), 2 for input that could not be used at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import (
    crd_command,
    operator_command,
    probe_command,
    probe_now_command,
    run_command,
    runner_command,
    validate_command,
)
from .arguments import EXIT_USAGE, OneLineErrorParser

EXIT_OK = 0
EXIT_DOWN = 1


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="tcpmonitor",
        description="TCP monitors: probe targets, validate TcpMonitor manifests, run the operator.",
    )
    parser.add_argument("--version", action="version", version=f"tcpmonitor {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineErrorParser
    )
    probe_command.register(commands)
    probe_now_command.register(commands)
    validate_command.register(commands)
    run_command.register(commands)
    operator_command.register(commands)
    runner_command.register(commands)
    crd_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ValueError as exc:  # option values only the command itself can judge
        print(f"tcpmonitor {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
