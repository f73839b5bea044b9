"""A result without the bytes the target sent, for targets whose replies policy keeps private.

A TcpMonitorPolicy rule with ``recordResponses: false`` lets a namespace check a target (is it
up, how fast, does the reply match) without storing what it said in a status the monitor's
author can read: the excerpt, the assertions' observed values, the protocol banner and any
message that quotes the reply. Sizes, timings, verdicts and the TLS facts stay.
"""

from __future__ import annotations

from ..api import ErrorCode, ProbeResult, Problem

# Codes whose messages quote what the target sent.
_QUOTING = frozenset({ErrorCode.PROTOCOL_ERROR.value, ErrorCode.STARTTLS_REFUSED.value})


def withhold_reply(result: ProbeResult, rule: str) -> ProbeResult:
    note = f"reply withheld (recordResponses false in {rule})"
    update: dict[str, object] = {
        "assertions": [o.model_copy(update={"actual": None}) for o in result.assertions],
    }
    if result.response is not None:
        update["response"] = result.response.model_copy(update={"excerpt": ""})
    if result.protocol is not None:
        update["protocol"] = result.protocol.model_copy(update={"detail": None})
    if result.error is not None and result.error.code in _QUOTING:
        update["error"] = Problem.model_construct(
            code=result.error.code, message=f"{result.error.code}: {note}"
        )
    return result.model_copy(update=update)
