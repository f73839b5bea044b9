"""The leaf's OCSP status judged: whose response it is, who signed it, and whether it is current.

A response is believed only when it is about this leaf (serial number and issuer hashes), signed
by the leaf's issuer or by a responder certificate the issuer made for that purpose (the
OCSPSigning extended key usage), and current (thisUpdate not ahead of the clock, nextUpdate not
past). The issuer is taken from the chain the server presented: OCSP names the issuer by its
key, so nothing outside the handshake is needed, and a response that a balancer mixed up (the
staple of another site's certificate) reads as invalid, not as good.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from ..api.printable import printable
from ..api.result import (
    MAX_CHAIN,
    MAX_MESSAGE,
    RevocationInfo,
    RevocationSource,
    RevocationStatus,
)

# A responder's clock may run this much ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)
# Single responses and embedded certificates looked at, at most.
_MAX_SINGLES = 16
_MAX_DELEGATES = 4
_T = TypeVar("_T")


def _guarded(read: Callable[[], _T]) -> _T | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        # As in certificate._attempt: odd DER is ValueError, a panic of cryptography's Rust parser a
        # BaseException; neither may escape a probe.
        return None


def info(
    status: RevocationStatus,
    message: str | None = None,
    source: RevocationSource | None = None,
    **times: datetime | str | None,
) -> RevocationInfo:
    return RevocationInfo.assemble(
        status=status,
        source=source,
        this_update=times.get("this_update"),
        next_update=times.get("next_update"),
        revoked_at=times.get("revoked_at"),
        reason=times.get("reason"),
        message=printable(message, MAX_MESSAGE) if message else None,
    )


def load_certificate(der: bytes | None) -> x509.Certificate | None:
    if der is None:
        return None
    return _guarded(lambda: x509.load_der_x509_certificate(der))


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    def check() -> bool:
        child.verify_directly_issued_by(parent)
        return True

    return _guarded(check) is True


def find_issuer(leaf: x509.Certificate, chain: tuple[bytes, ...]) -> x509.Certificate | None:
    """The presented certificate that issued ``leaf`` (by name, then by signature)."""
    for der in chain[1:MAX_CHAIN]:
        candidate = load_certificate(der)
        if candidate is not None and _issued_by(leaf, candidate):
            return candidate
    return None


def responder_url(leaf: x509.Certificate) -> str | None:
    """The first OCSP responder URL of the leaf's authorityInfoAccess, if any."""

    def read() -> str | None:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        for access in aia:
            if access.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                access.access_location, x509.UniformResourceIdentifier
            ):
                return str(access.access_location.value)
        return None

    return _guarded(read)


def build_request(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """A DER OCSP request for ``leaf`` (SHA-1 CertID, what every responder understands)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    return request.public_bytes(serialization.Encoding.DER)


def _verify(key: object, signature: bytes, data: bytes, algorithm: object) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and isinstance(algorithm, hashes.HashAlgorithm):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
            algorithm, hashes.HashAlgorithm
        ):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        elif isinstance(key, dsa.DSAPublicKey) and isinstance(algorithm, hashes.HashAlgorithm):
            key.verify(signature, data, algorithm)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _may_sign_ocsp(delegate: x509.Certificate) -> bool:
    usage = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage


def _signed_by(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> str | None:
    """None when the issuer or a delegate it made signed the response; else why not."""
    data, signature = response.tbs_response_bytes, response.signature
    algorithm = _guarded(lambda: response.signature_hash_algorithm)
    if _verify(issuer.public_key(), signature, data, algorithm):
        return None
    for delegate in list(response.certificates)[:_MAX_DELEGATES]:
        if not _verify(_guarded(delegate.public_key), signature, data, algorithm):
            continue
        if not _issued_by(delegate, issuer):
            return "signed by a responder certificate its issuer did not issue"
        if not _guarded(partial(_may_sign_ocsp, delegate)):
            return "signed by a certificate of the issuer without the OCSPSigning key usage"
        if not delegate.not_valid_before_utc <= now <= delegate.not_valid_after_utc:
            return "signed by a responder certificate outside its validity"
        return None
    return "the signature is not the issuer's nor a delegated responder's"


def _mine(
    single: ocsp.OCSPSingleResponse, leaf: x509.Certificate, issuer: x509.Certificate
) -> bool:
    if single.serial_number != leaf.serial_number:
        return False
    algorithm = single.hash_algorithm
    expected = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm).build()
    return (
        single.issuer_name_hash == expected.issuer_name_hash
        and single.issuer_key_hash == expected.issuer_key_hash
    )


def judge_response(
    der: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    source: RevocationSource,
) -> RevocationInfo:
    """What a DER OCSP response says of ``leaf``, if it can be believed. Never raises."""
    judged = _guarded(lambda: _judge(der, leaf, issuer, now, source))
    if judged is None:
        return info(RevocationStatus.INVALID, "the OCSP response does not parse", source)
    return judged


def _judge(
    der: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    source: RevocationSource,
) -> RevocationInfo:
    invalid = RevocationStatus.INVALID
    response = ocsp.load_der_ocsp_response(der)
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return info(invalid, f"the responder answered {response.response_status.name}", source)
    singles = [s for _, s in zip(range(_MAX_SINGLES), response.responses, strict=False)]
    single = next((s for s in singles if _guarded(partial(_mine, s, leaf, issuer))), None)
    if single is None:
        return info(invalid, "the OCSP response is not for this certificate", source)
    times = {
        "this_update": single.this_update_utc,
        "next_update": single.next_update_utc,
    }
    why_not = _signed_by(response, issuer, now)
    if why_not is not None:
        return info(invalid, f"OCSP response {why_not}", source, **times)
    if single.this_update_utc > now + CLOCK_SKEW:
        return info(
            invalid,
            f"the OCSP response is dated in the future (thisUpdate "
            f"{single.this_update_utc.isoformat()})",
            source,
            **times,
        )
    if single.next_update_utc is not None and single.next_update_utc < now:
        return info(
            invalid,
            f"the OCSP response expired (nextUpdate {single.next_update_utc.isoformat()})",
            source,
            **times,
        )
    status = single.certificate_status
    if status is ocsp.OCSPCertStatus.GOOD:
        return info(RevocationStatus.GOOD, None, source, **times)
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return info(
            RevocationStatus.UNKNOWN, "the CA's responder does not know the leaf", source, **times
        )
    reason = single.revocation_reason
    revoked_at = single.revocation_time_utc
    when = revoked_at.isoformat() if revoked_at else "?"
    why = f" ({reason.value})" if reason is not None else ""
    return info(
        RevocationStatus.REVOKED,
        f"the leaf was revoked at {when}{why}",
        source,
        revoked_at=revoked_at,
        reason=reason.value if reason is not None else None,
        **times,
    )


class StapleVerdicts:
    """Judged staples, remembered per (staple, presented chain) while their verdict holds.

    A server staples the same response for hours; parsing it and checking two signatures is
    about a quarter of a millisecond of CPU, which a scheduler probing thousands of monitors
    would pay every probe. The verdict is kept until the response's nextUpdate (at most an
    hour), so an expired staple is judged again, and found expired, in time.
    """

    def __init__(self, max_entries: int = 4096, max_age: float = 3600.0) -> None:
        self._max_entries = max_entries
        self._max_age = max_age
        self._entries: OrderedDict[bytes, tuple[RevocationInfo, float]] = OrderedDict()

    def judge(
        self, staple: bytes, leaf_der: bytes, chain: tuple[bytes, ...], now: datetime
    ) -> RevocationInfo:
        digest = hashlib.sha256()
        for part in (staple, leaf_der, *chain):
            digest.update(len(part).to_bytes(4, "big") + part)
        key = digest.digest()
        stamp = now.timestamp()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > stamp:
            self._entries.move_to_end(key)
            return entry[0]
        verdict = judge_staple(staple, leaf_der, chain, now)
        until = stamp + self._max_age
        if verdict.next_update is not None:
            until = min(until, verdict.next_update.timestamp())
        if verdict.this_update is None or verdict.this_update <= now:
            self._entries[key] = (verdict, until)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return verdict

    def __len__(self) -> int:
        return len(self._entries)


def judge_staple(
    staple: bytes, leaf_der: bytes, chain: tuple[bytes, ...], now: datetime
) -> RevocationInfo:
    """A stapled response judged against the presented leaf and the issuer in its chain."""
    source = RevocationSource.STAPLE
    leaf = load_certificate(leaf_der)
    issuer = find_issuer(leaf, chain) if leaf is not None else None
    if leaf is None or issuer is None:
        return info(RevocationStatus.NOT_CHECKED, NO_ISSUER, source)
    return judge_response(staple, leaf, issuer, now, source)


NO_ISSUER = "the leaf's issuer is not in the presented chain, so no OCSP response can be checked"
STAPLE_VERDICTS = StapleVerdicts()
