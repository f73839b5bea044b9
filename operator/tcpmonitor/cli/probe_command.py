"""``tcpmonitor probe``: one probe of a target, or of every TcpMonitor in files."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..api import ProbeResult, Protocol, TcpMonitorSpec, Verdict
from ..api.validation_messages import validation_problems
from ..probe import (
    ClientCertificate,
    PlanError,
    ProbeMaterial,
    ProbePlan,
    compile_plan,
    run_probe,
)
from ..probe.material import resolve_material
from ..standalone.bounded_yaml import FileRefused, read_bounded
from ..standalone.manifests import LoadedMonitor, load_manifests
from ..standalone.policy_files import policy_book
from .arguments import Commands, parse_target, unescape
from .render import render_result
from .run_command import add_policy_options, allowed_targets

CONCURRENCY = 64


def register(commands: Commands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "probe",
        help="probe a target once and print the result",
        description="Probe HOST:PORT (IPv6 as [ADDR]:PORT) once, or every TcpMonitor in a file "
        "or directory with -f. Exit 0 when all are Up or Degraded, 1 when any is Down, 2 for "
        "bad input.",
    )
    parser.add_argument("target", nargs="?", help="HOST:PORT")
    parser.add_argument("-f", "--filename", type=Path, help="TcpMonitor YAML file or directory")
    parser.add_argument("--send", help=r"payload; understands \n \r \t \\ \xHH")
    parser.add_argument(
        "--expect", action="append", default=[], help="the reply must contain this (repeatable)"
    )
    parser.add_argument(
        "--protocol",
        metavar="NAME",
        help="speak this protocol (case-insensitive): " + ", ".join(p.value for p in Protocol),
    )
    parser.add_argument("--tls", action="store_true", help="perform a TLS handshake")
    parser.add_argument(
        "--starttls",
        action="store_true",
        help="upgrade to TLS inside --protocol (STARTTLS, STLS, AUTH TLS, ...); implies --tls",
    )
    parser.add_argument(
        "--expect-unreachable",
        action="store_true",
        help="Up when the connection is refused or times out, Down when it is accepted",
    )
    parser.add_argument("--sni", help="TLS server name (default: the host)")
    parser.add_argument("--ca", type=Path, help="PEM CA bundle to trust instead of system roots")
    parser.add_argument("--cert", type=Path, help="PEM client certificate (with --key)")
    parser.add_argument("--key", type=Path, help="PEM client private key (with --cert)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    parser.add_argument("--timeout", default="10s", help="overall timeout (default 10s)")
    parser.add_argument(
        "--ip-family", choices=["any", "ipv4", "ipv6"], default="any", help="address family"
    )
    parser.add_argument("--degraded-after", help="Degraded when slower than this duration")
    parser.add_argument("--max-response-time", help="Down when slower than this duration")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    add_policy_options(parser, default="off: you are the one probing")
    parser.set_defaults(run=run)


_FAMILIES = {"any": "Any", "ipv4": "IPv4", "ipv6": "IPv6"}


# A PEM bundle of every public CA is about 200 KB.
MAX_PEM_BYTES = 4 * 1024 * 1024


def _read_file(path: Path) -> bytes:
    try:
        return read_bounded(path, MAX_PEM_BYTES)
    except FileRefused as exc:
        raise ValueError(f"cannot read {path}: {exc.reason}") from None


_PROTOCOLS = {p.value.lower(): p.value for p in Protocol}


def _protocol(name: str) -> str:
    try:
        return _PROTOCOLS[name.lower()]
    except KeyError:
        raise ValueError(
            f"--protocol: unknown protocol {name!r} (one of {', '.join(_PROTOCOLS.values())})"
        ) from None


def spec_from_arguments(args: argparse.Namespace) -> tuple[TcpMonitorSpec, ProbeMaterial]:
    """The ad-hoc probe expressed as a spec, so it obeys exactly the rules a monitor does."""
    host, port = parse_target(args.target)
    raw: dict[str, Any] = {
        "host": host,
        "port": port,
        "timeout": args.timeout,
        "interval": args.timeout,
        "ipFamily": _FAMILIES[args.ip_family],
        "assertions": [
            {"source": "ResponseData", "comparison": "Contains", "target": text}
            for text in args.expect
        ],
    }
    if args.send is not None:
        # Through sendBase64, so that \xHH bytes reach the wire exactly as typed.
        raw["sendBase64"] = base64.b64encode(unescape(args.send)).decode()
    if args.protocol is not None:
        raw["protocol"] = _protocol(args.protocol)
    if args.expect_unreachable:
        raw["expect"] = "Unreachable"
    if args.degraded_after:
        raw["degradedResponseTime"] = args.degraded_after
    if args.max_response_time:
        raw["maxResponseTime"] = args.max_response_time
    if (args.cert is None) != (args.key is None):
        raise ValueError("--cert and --key go together")
    # --starttls turns TLS on: on the command line the flag says it all, while in a spec
    # tls.enabled stays explicit (see TlsSpec.start_tls).
    if args.tls or args.starttls or args.sni or args.ca or args.insecure or args.cert:
        raw["tls"] = {"enabled": True, "insecureSkipVerify": args.insecure}
        if args.starttls:
            raw["tls"]["startTLS"] = True
        if args.sni:
            raw["tls"]["serverName"] = args.sni
    try:
        spec = TcpMonitorSpec.model_validate(raw)
    except ValidationError as exc:
        problem = validation_problems(exc, "arguments", 0)[0]
        raise ValueError(f"{_option_name(problem.field)}: {problem.message}") from None
    material = ProbeMaterial(
        ca_pem=_read_file(args.ca).decode("utf-8", "replace") if args.ca else None,
        client_certificate=(
            ClientCertificate(_read_file(args.cert), _read_file(args.key)) if args.cert else None
        ),
    )
    return spec, material


_OPTIONS = {
    "timeout": "--timeout",
    "interval": "--timeout",
    "host": "target host",
    "port": "target port",
    "degradedResponseTime": "--degraded-after",
    "maxResponseTime": "--max-response-time",
    "tls.serverName": "--sni",
    "tls.startTLS": "--starttls",
    "protocol": "--protocol",
    "expect": "--expect-unreachable",
}


def _option_name(field: str) -> str:
    field = field.lstrip(".")  # cross-field rules name their field as a path below the spec
    return _OPTIONS.get(field, field)


async def _probe_all(plans: list[ProbePlan]) -> list[ProbeResult]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(plan: ProbePlan) -> ProbeResult:
        async with gate:
            return await run_probe(plan)

    return list(await asyncio.gather(*(one(p) for p in plans)))


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"tcpmonitor probe: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if (args.target is None) == (args.filename is None):
        return _fail(args, "give either HOST:PORT or -f PATH")
    titles: list[str] = []
    identities: list[dict[str, str]] = []
    plans: list[ProbePlan] = []
    if args.filename is not None:
        manifests = load_manifests([args.filename])
        if manifests.problems:
            for problem in manifests.problems:
                print(f"tcpmonitor: {problem}", file=sys.stderr)
            return 2
        loaded: list[LoadedMonitor] = manifests.monitors
        for item in loaded:
            m = item.monitor
            try:
                material = resolve_material(m.spec, m.metadata.namespace, manifests)
                plans.append(compile_plan(m.spec, material))
            except PlanError as exc:
                print(f"tcpmonitor: {item.file}:doc {item.doc}: {exc}", file=sys.stderr)
                return 2
            titles.append(f"{m.metadata.namespace}/{m.metadata.name} ({m.spec.host}:{m.spec.port})")
            identities.append({"namespace": m.metadata.namespace, "name": m.metadata.name})
    else:
        try:
            spec, material = spec_from_arguments(args)
            plans.append(compile_plan(spec, material))
        except (ValueError, PlanError) as exc:
            return _fail(args, str(exc))
        titles.append(args.target)
        identities.append({})
    if args.policy:
        try:
            allowed = allowed_targets(args.allow_target)
        except ValueError as exc:
            return _fail(args, str(exc))
        book = policy_book(
            args.policy, deny_uncovered=args.target_default_action == "Deny", allowed=allowed
        )
        if book is None:
            return 2
        # A target given on the command line is judged as in the default namespace.
        namespaces = [ident.get("namespace", "default") for ident in identities]
        plans = [
            dataclasses.replace(plan, guard=book.guard(ns))
            for plan, ns in zip(plans, namespaces, strict=True)
        ]
    results = asyncio.run(_probe_all(plans))
    if args.output == "json":
        out = [{**ident, **r.to_json_dict()} for ident, r in zip(identities, results, strict=True)]
        print(json.dumps(out, indent=2))
    else:
        print("\n\n".join(render_result(r, t) for r, t in zip(results, titles, strict=True)))
    return 1 if any(r.state is Verdict.DOWN for r in results) else 0
