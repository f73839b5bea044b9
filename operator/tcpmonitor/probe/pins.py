"""tls.pin: the certificate, key or issuer the server must present, checked after the handshake
and before a byte of the payload or dialog is sent to a server that fails it."""

from __future__ import annotations

from ..api import ErrorCode, TlsInfo
from .failures import ProbeFailure
from .plan import PinPlan


def check_pins(pin: PinPlan, tls: TlsInfo) -> ProbeFailure | None:
    """The first pin that does not hold, as the probe's failure; None when all hold."""
    chain = tls.chain
    if not chain and tls.certificate is not None:
        # The chain was not read (see probe/handshake_capture.py): the leaf's fingerprint still is.
        candidates_fp = [tls.certificate.sha256_fingerprint]
        candidates_spki: list[str] = []
    else:
        scoped = chain if pin.chain else chain[:1]
        candidates_fp = [c.sha256_fingerprint for c in scoped]
        candidates_spki = [c.spki_sha256 for c in scoped if c.spki_sha256]
    where = "presented chain" if pin.chain else "leaf"
    if pin.fingerprints and not pin.fingerprints.intersection(candidates_fp):
        shown = candidates_fp[0] if candidates_fp else "none read"
        return ProbeFailure(
            ErrorCode.TLS_FINGERPRINT_MISMATCH,
            f"no certificate of the {where} has a pinned SHA-256 fingerprint (leaf: {shown})",
        )
    if pin.spki and not pin.spki.intersection(candidates_spki):
        shown = candidates_spki[0] if candidates_spki else "none read"
        return ProbeFailure(
            ErrorCode.TLS_PUBLIC_KEY_PIN_MISMATCH,
            f"no certificate of the {where} has a pinned public key (leaf spkiSha256: {shown})",
        )
    if pin.issuer is not None:
        issuer = tls.certificate.issuer if tls.certificate is not None else None
        if issuer != pin.issuer:
            return ProbeFailure(
                ErrorCode.TLS_ISSUER_MISMATCH,
                f"the leaf was issued by {issuer or 'an unreadable issuer'}, not {pin.issuer}",
            )
    return None
