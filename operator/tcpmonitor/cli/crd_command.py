"""``tcpmonitor crd``: print the CRD generated from the API models."""

from __future__ import annotations

import argparse
import sys

from ..api.crd import render_crd_yaml
from .arguments import Commands


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "crd", help="print the TcpMonitor CustomResourceDefinition YAML"
    )
    parser.set_defaults(run=run)


def run(_: argparse.Namespace) -> int:
    sys.stdout.write(render_crd_yaml())
    return 0
