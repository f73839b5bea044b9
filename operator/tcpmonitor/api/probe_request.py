"""Probe now: the annotation that asks for one probe at once, as Flux's ``requestedAt``.

``kubectl annotate tcpmonitor NAME tcpmonitor.dev/requestedAt="$(date -Iseconds)" --overwrite``
(or ``tcpmonitor probe-now``) makes the monitor's prober probe it at once; the value is then
copied to ``status.lastHandledProbeRequest``, so that whoever set it knows when the result in
``status.lastResult`` is the one asked for. The value is opaque (any new value is a new request,
the same value again is none); it is bounded and printable, as it is copied into the status.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import GROUP

PROBE_REQUEST_ANNOTATION = f"{GROUP}/requestedAt"
MAX_PROBE_REQUEST = 64


def probe_request_problem(value: str) -> str | None:
    """Why ``value`` cannot be a probe request, or None when it can."""
    if not value:
        return "is empty"
    if len(value) > MAX_PROBE_REQUEST:
        return f"is {len(value)} characters long, more than {MAX_PROBE_REQUEST}"
    if not all(" " <= c <= "~" for c in value):
        return "has characters other than printable ASCII"
    return None


def probe_request(annotations: Mapping[str, str]) -> str | None:
    """The probe request ``annotations`` carry, or None (none, or one that cannot be used)."""
    value = annotations.get(PROBE_REQUEST_ANNOTATION)
    if value is None or probe_request_problem(value) is not None:
        return None
    return value
