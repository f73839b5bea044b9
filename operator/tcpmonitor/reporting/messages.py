"""One-line descriptions of results for status messages, conditions and Events. Pure."""

from __future__ import annotations

import re

from ..api import ProbeResult
from ..api.result import MAX_MESSAGE
from .record import MonitorRecord


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


_TIMINGS = re.compile(r" \(dns [^()]*, total [^()]*\)")


def without_timings(text: str) -> str:
    """``text`` less the phase timings ``describe_result`` puts in parentheses: what is left
    changes only when something worth telling does (state, address, error)."""
    return _TIMINGS.sub("", text)


def describe_result(result: ProbeResult | None) -> str:
    """One line with what went wrong (or how fast it went), for messages and Events."""
    if result is None:
        return "no probe result yet"
    t = result.timings
    timing = (
        f"dns {_ms(t.dns)}, connect {_ms(t.connect)}, tls {_ms(t.tls)}, data {_ms(t.data)}, "
        f"total {_ms(t.total)}"
    )
    address = result.remote_address or "no address"
    problem = result.error or (result.warnings[0] if result.warnings else None)
    if problem is not None:
        # Most messages already start with the address; say it once.
        where = "" if address in problem.message else f"{address}: "
        head = f"{problem.code} {where}{problem.message}"
    else:
        head = f"{address} {result.state.value}"
    if result.protocol is not None and (problem is None or result.protocol.detail):
        # What the server said it is belongs in the line: a version change is worth a write,
        # and with a failure it tells who failed (STARTTLS_REFUSED from "Postfix ...").
        said = f": {result.protocol.detail}" if result.protocol.detail else ""
        head += f" [{result.protocol.name}{said}]"
    return f"{head} ({timing})"[:MAX_MESSAGE]


def verdict_detail(summary: str, deciding: ProbeResult | None, locations: int) -> str:
    """What the controller says of a monitor: for one location, exactly what the all-in-one
    says (its deciding result described); for several, the quorum summary naming them."""
    return describe_result(deciding) if locations == 1 else summary


def describe_skipped(record: MonitorRecord) -> str:
    return (
        f"{record.skipped_probes} probe(s) in a row skipped: no probe slot was free before the "
        "next was due (the prober is saturated)"
    )
