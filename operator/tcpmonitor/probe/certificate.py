"""What the server presented, read from a finished handshake: the leaf inspected, the chain,
the stapled OCSP response.

Inspecting needs cryptography (about 8 MB once imported): the engine imports this module, and
``chain``, ``hostname``, ``revocation`` and ``ocsp_responder``, when a TLS probe first needs
them, so a runner whose monitors are not TLS never loads it.
"""

from __future__ import annotations

import hashlib
import ssl
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from cryptography import x509

from ..api import Certificate
from ..api.printable import printable, printable_list
from ..api.result import MAX_DISTINGUISHED_NAME, MAX_DNS_NAME, MAX_DNS_NAMES
from .chain import CACHED_CERTIFICATES, Chain, inspect_chain
from .handshake_capture import presented_chain, stapled_response

_T = TypeVar("_T")

_SAN_OID = bytes.fromhex("551d11")  # 2.5.29.17, subjectAltName
_UNREADABLE = "(unreadable)"


@dataclass(frozen=True)
class Inspection:
    """What could be read from a certificate, and why not all of it (``None`` when all).

    ``problem`` completes "certificate ...": "does not parse (SHA-256 ...): ..." or "read only
    in part: ...".
    """

    certificate: Certificate | None
    problem: str | None = None


def _attempt(read: Callable[[], _T], part: str, problems: list[str]) -> _T | None:
    try:
        return read()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        # cryptography raises ValueError on odd DER, but a panic in its Rust parser arrives as
        # pyo3's PanicException, a BaseException: neither may escape a probe.
        problems.append(f"{part}: {exc}")
        return None


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start, end) of the DER element at ``pos``; ValueError when it is malformed."""
    if pos + 2 > end or data[pos] & 0x1F == 0x1F:
        raise ValueError("malformed DER element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if not 0 < size <= 4 or pos + size > end:
            raise ValueError("malformed DER length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > end:
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    while start < end:
        element = _tlv(data, start, end)
        yield element
        start = element[2]


def raw_dns_names(tbs: bytes) -> list[bytes]:
    """The dNSName entries of the subjectAltName extension, read from the DER by hand.

    For certificates cryptography refuses (a name that is not IA5/ASCII): the names are still
    what the user must see to find the broken one, so they are read as bytes and shown escaped.
    """
    _, start, end = _tlv(tbs, 0, len(tbs))
    for tag, ext_start, ext_end in _children(tbs, start, end):
        if tag != 0xA3:  # [3] extensions
            continue
        _, seq_start, seq_end = _tlv(tbs, ext_start, ext_end)
        for _, item_start, item_end in _children(tbs, seq_start, seq_end):
            parts = list(_children(tbs, item_start, item_end))
            oid, value = parts[0], parts[-1]
            if tbs[oid[1] : oid[2]] != _SAN_OID or value[0] != 0x04:
                continue
            _, names_start, names_end = _tlv(tbs, value[1], value[2])
            return [tbs[s:e] for tag, s, e in _children(tbs, names_start, names_end) if tag == 0x82]
    return []


def _dns_names(cert: x509.Certificate, problems: list[str]) -> list[str]:
    def parsed() -> list[str]:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return list(san.value.get_values_for_type(x509.DNSName))

    names = _attempt(parsed, "subjectAltName", problems)
    if names is None:
        raw = _attempt(lambda: raw_dns_names(cert.tbs_certificate_bytes), "raw DER", problems)
        if raw is None:
            return []
        problems.append("the DNS names shown were read from the raw DER")
        names = [name.decode("latin-1") for name in raw]
    # DNS names are ASCII (IDNs travel as punycode): anything else is shown as \xHH bytes.
    return printable_list(names, MAX_DNS_NAMES, MAX_DNS_NAME, ascii_only=True)


def _fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def inspect_certificate(der: bytes, now: datetime | None = None) -> Inspection:
    """The summary users need, above all ``notAfter``, from a DER certificate. Never raises.

    A certificate is the target's to make: whatever does not parse is left out (and said so in
    ``problem``) and everything kept is escaped and cut to the result's bounds. The reading is
    remembered per certificate (see chain.CACHED_CERTIFICATES); only ``daysRemaining``
    depends on the time.
    """
    fields, problem = _read_leaf(der)
    if fields is None:
        return Inspection(None, problem)
    not_after = fields["not_after"]
    names = fields["dns_names"]
    assert isinstance(not_after, datetime) and isinstance(names, tuple)
    remaining = (not_after - (now or datetime.now(UTC))).total_seconds() / 86400
    certificate = Certificate.assemble(
        **(fields | {"dns_names": list(names), "days_remaining": round(remaining, 3)})
    )
    return Inspection(certificate, problem)


@lru_cache(maxsize=CACHED_CERTIFICATES)
def _read_leaf(der: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The time-independent fields of the summary (None: does not parse), and the problem.

    Shared by every probe that meets this certificate: nothing here may be modified.
    """
    with warnings.catch_warnings():
        # cryptography warns about what it tolerates in the target's certificate (a negative
        # serial, an over-long name): the target's business, not lines for our log.
        warnings.simplefilter("ignore")
        problems: list[str] = []
        fingerprint = _fingerprint(der)
        cert = _attempt(lambda: x509.load_der_x509_certificate(der), "certificate", problems)
        if cert is None:
            return None, f"does not parse (SHA-256 {fingerprint}): {'; '.join(problems)}"
        validity = _attempt(
            lambda: (cert.not_valid_before_utc, cert.not_valid_after_utc), "validity", problems
        )
        if validity is None:
            return None, f"does not parse (SHA-256 {fingerprint}): {'; '.join(problems)}"
        # Not inlined: reading .subject is what parses the name, so it must happen inside
        # _attempt.
        subject = _attempt(lambda: cert.subject.rfc4514_string(), "subject", problems)  # noqa: PLW0108
        issuer = _attempt(lambda: cert.issuer.rfc4514_string(), "issuer", problems)  # noqa: PLW0108
        names = _dns_names(cert, problems)
    not_before, not_after = validity
    fields: dict[str, Any] = {
        "subject": printable(_UNREADABLE if subject is None else subject, MAX_DISTINGUISHED_NAME),
        "issuer": printable(_UNREADABLE if issuer is None else issuer, MAX_DISTINGUISHED_NAME),
        "dns_names": tuple(names),
        "not_before": not_before,
        "not_after": not_after,
        "sha256_fingerprint": fingerprint,
    }
    return fields, f"read only in part: {'; '.join(problems)}" if problems else None


@dataclass(frozen=True)
class Peer:
    """What the server presented: its leaf inspected, and the whole chain (None: not read)."""

    inspection: Inspection | None
    chain: Chain | None
    leaf_der: bytes | None = None
    # The presented certificates as DER (at most MAX_CHAIN), and the stapled OCSP response.
    chain_ders: tuple[bytes, ...] = ()
    staple: bytes | None = None

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The chain's SHA-256 fingerprints in order: what identifies what was presented."""
        if self.chain is not None and self.chain.certificates:
            return tuple(c.sha256_fingerprint for c in self.chain.certificates)
        if self.inspection is not None and self.inspection.certificate is not None:
            return (self.inspection.certificate.sha256_fingerprint,)
        return ()


def read_peer(ssl_object: ssl.SSLObject | None) -> Peer:
    """The leaf and the chain of a finished handshake on a context from build_contexts."""
    if ssl_object is None:
        return Peer(None, None)
    der = ssl_object.getpeercert(binary_form=True)
    presented = presented_chain(ssl_object)
    return Peer(
        inspect_certificate(der) if der else None,
        inspect_chain(*presented) if presented is not None else None,
        der or None,
        tuple(presented[0]) if presented is not None else (),
        stapled_response(ssl_object),
    )
