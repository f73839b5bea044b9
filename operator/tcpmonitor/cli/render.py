"""Human output for probe results: one block per monitor, phases aligned, failures first."""

from __future__ import annotations

from datetime import datetime

from ..api import ProbeResult
from ..api.printable import printable
from ..api.result import ChainCertificate, RevocationInfo, RevocationStatus

_PHASES = ("dns", "connect", "tls", "data", "total")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render_result(result: ProbeResult, title: str) -> str:
    lines = [f"{printable(title)}  {result.state.value}"]

    def row(label: str, value: str) -> None:
        # Results are escaped when made; escaping again here keeps a terminal safe from a
        # result built elsewhere (read back from a status) and changes nothing otherwise.
        lines.append(f"  {label:<10} {printable(value)}")

    row("address", result.remote_address or "-")
    timings = result.timings.model_dump()
    for phase in _PHASES:
        row(phase, _ms(timings[phase]))
    if result.protocol is not None:
        row("protocol", f"{result.protocol.name}: {result.protocol.detail or '-'}")
    for index, step in enumerate(result.steps):
        row(f"steps[{index}]", f"{_ms(step.time)} {'passed' if step.passed else 'FAILED'}")
    if result.error is not None:
        row("error", f"{result.error.code}: {result.error.message}")
    for warning in result.warnings:
        row("warning", f"{warning.code}: {warning.message}")
    if result.request is not None:
        request = result.request
        shown = "from a Secret" if request.from_secret else f'"{request.excerpt or ""}"'
        row("request", f"{request.bytes} bytes {shown}")
    if result.response is not None:
        row("response", f'{result.response.bytes} bytes "{result.response.excerpt}"')
    for a in result.assertions:
        verdict = "passed" if a.passed else "FAILED"
        target = "" if a.target is None else f' "{a.target}"'
        actual = "" if a.actual is None else f' (actual "{a.actual}")'
        row("assert", f"{a.source} {a.comparison}{target}: {verdict}{actual}")
    if result.tls is not None:
        tls = result.tls
        session = " ".join(v for v in (tls.version, tls.cipher) if v)
        trust = "verified" if tls.verified else f"NOT verified ({tls.verify_error or 'skipped'})"
        row("tls", f"{session}, {trust}" if session else trust)
        row("trust", _verdict(tls.chain_trusted, "chain trusted", tls.chain_error))
        row("hostname", _verdict(tls.hostname_verified, "matches", tls.hostname_error))
        if tls.client_certificate_enforced is not None:
            enforced = tls.client_certificate_enforced
            row(
                "mTLS",
                f"enforced: a client without a certificate was refused ({tls.refusal_alert})"
                if enforced
                else "NOT enforced: a client without a certificate got in",
            )
        if tls.revocation is not None:
            row("ocsp", _revocation(tls.revocation))
        cert = tls.certificate
        if cert is not None:
            row("subject", cert.subject)
            row("issuer", cert.issuer)
            if cert.dns_names:
                row("names", ", ".join(cert.dns_names))
            row(
                "expires",
                f"{cert.not_after.strftime('%Y-%m-%d %H:%M:%SZ')} ({cert.days_remaining:.1f} days)",
            )
        for index, entry in enumerate(tls.chain):
            row(f"chain[{index}]", _chain_entry(entry))
        if tls.chain_length is not None and tls.chain_length > len(tls.chain):
            row("chain", f"{tls.chain_length - len(tls.chain)} more not shown")
        if tls.chain_expiry is not None:
            row(
                "chain exp",
                f"{_date(tls.chain_expiry)} ({tls.chain_expiry_subject or '?'}), earliest in "
                "the chain",
            )
    return "\n".join(lines)


def _date(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M:%SZ")


def _verdict(value: bool | None, good: str, reason: str | None) -> str:
    if value is None:
        text = reason or "no certificate"
        return text if text.startswith("not checked") else f"not checked: {text}"
    return good if value else f"NO: {reason or 'no reason given'}"


def _revocation(revocation: RevocationInfo) -> str:
    """good (staple, next update ...), REVOKED at ... (keyCompromise), none: ..."""
    status = revocation.status
    text = status.value.upper() if status is RevocationStatus.REVOKED else status.value
    details = [str(revocation.source)] if revocation.source is not None else []
    if revocation.revoked_at is not None:
        details.append(f"revoked {_date(revocation.revoked_at)}")
    if revocation.reason:
        details.append(revocation.reason)
    if status is RevocationStatus.GOOD and revocation.next_update is not None:
        details.append(f"next update {_date(revocation.next_update)}")
    if revocation.message and status not in (RevocationStatus.GOOD, RevocationStatus.REVOKED):
        details.append(revocation.message)
    return f"{text} ({', '.join(details)})" if details else text


def _chain_entry(entry: ChainCertificate) -> str:
    key = " ".join(str(v) for v in (entry.key_type, entry.key_size) if v is not None)
    return (
        f"{entry.subject}, issuer {entry.issuer}, expires {_date(entry.not_after)}, "
        f"{key or 'key ?'}, {entry.signature_algorithm or 'signature ?'}, "
        f"SHA-256 {entry.sha256_fingerprint}"
    )
