"""The certificates of the chain the server presented (``handshake_capture``), summarised.

Reads them with cryptography, which only a TLS probe imports (see ``certificate``).
"""

from __future__ import annotations

import base64
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from ..api.printable import printable
from ..api.result import MAX_CHAIN, MAX_DISTINGUISHED_NAME, ChainCertificate

_UNREADABLE = "(unreadable)"
_T = TypeVar("_T")


def _colon_hex(digest: bytes) -> str:
    text = digest.hex().upper()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


def _key(cert: x509.Certificate) -> tuple[str | None, int | None, str | None]:
    """(key type, size in bits, base64 SHA-256 of the SubjectPublicKeyInfo)."""
    key = cert.public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, pin
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size, pin
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, pin
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, pin
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, pin
    return "other", None, pin


def _signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    # cryptography names the OIDs it knows (sha256WithRSAEncryption, ecdsa-with-SHA384); an
    # unknown one is shown dotted, which is what openssl x509 -text would show too.
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string


def _guarded(read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        # As in certificate._attempt: cryptography raises ValueError on odd DER and a panic of its
        # Rust parser is a BaseException; a part that does not parse is shown as null.
        return None


def _subject(name: Callable[[], x509.Name]) -> str:
    text = _guarded(lambda: name().rfc4514_string())
    return printable(text if text is not None else _UNREADABLE, MAX_DISTINGUISHED_NAME)


# Distinct certificates remembered, with their summaries: a target presents the same chain
# probe after probe, and parsing it again costs more than the rest of the probe's Python.
# Bounded, so a runner facing thousands of distinct chains holds at most this many (a few
# kilobytes each); the summaries are never modified once made, so results can share them.
CACHED_CERTIFICATES = 256


@lru_cache(maxsize=CACHED_CERTIFICATES)
def inspect_chain_entry(der: bytes) -> ChainCertificate:
    """One certificate of the chain summarised; never raises, what does not parse is null."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the target's odd DER is not our log's business
        cert = _guarded(lambda: x509.load_der_x509_certificate(der))
        if cert is None:
            return ChainCertificate.model_construct(
                subject=_UNREADABLE,
                issuer=_UNREADABLE,
                not_before=None,
                not_after=None,
                sha256_fingerprint=_colon_hex(hashlib.sha256(der).digest()),
                key_type=None,
                key_size=None,
                spki_sha256=None,
                signature_algorithm=None,
            )
        key_type, key_size, pin = _guarded(lambda: _key(cert)) or (None, None, None)
        algorithm = _guarded(lambda: _signature_algorithm(cert))
        return ChainCertificate.model_construct(
            subject=_subject(lambda: cert.subject),
            issuer=_subject(lambda: cert.issuer),
            not_before=_guarded(lambda: cert.not_valid_before_utc),
            not_after=_guarded(lambda: cert.not_valid_after_utc),
            sha256_fingerprint=_colon_hex(hashlib.sha256(der).digest()),
            key_type=key_type,
            key_size=key_size,
            spki_sha256=pin,
            signature_algorithm=printable(algorithm, 64, ascii_only=True) if algorithm else None,
        )


@dataclass(frozen=True)
class Chain:
    """The presented chain summarised, and which of its certificates expires first."""

    certificates: list[ChainCertificate]
    presented: int
    earliest: ChainCertificate | None  # None when no notAfter could be read
    earliest_index: int | None


def inspect_chain(ders: list[bytes], presented: int) -> Chain:
    """Each certificate summarised (at most MAX_CHAIN), and the one that expires first."""
    certificates = [inspect_chain_entry(der) for der in ders[:MAX_CHAIN]]
    dated = [(c.not_after, i) for i, c in enumerate(certificates) if c.not_after is not None]
    if not dated:
        return Chain(certificates, presented, None, None)
    _, index = min(dated)
    return Chain(certificates, presented, certificates[index], index)
