"""Server certificates a hostile target could present, built per test with ``cryptography``.

``cryptography`` refuses to *build* most of them (a DNS name that is not ASCII), so a
certificate is built with same-length placeholders, the placeholders are replaced in the
TBSCertificate's DER, and the patched TBSCertificate is signed again: the result is a
certificate whose signature is valid and whose only oddity is the one we put in.
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class HostileCertificate:
    cert_pem: bytes
    key_pem: bytes

    def server_context(self, directory: Path) -> ssl.SSLContext:
        cert, key = directory / "hostile.crt", directory / "hostile.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _element(der: bytes, pos: int) -> tuple[int, int]:
    """(start of value, end) of the DER element at ``pos``."""
    first = der[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    size = first & 0x7F
    start = pos + 2 + size
    return start, start + int.from_bytes(der[pos + 2 : start], "big")


def hostile_certificate(
    *,
    common_name: str = "hostile.test",
    dns_names: list[str] | None = None,
    patches: dict[bytes, bytes] | None = None,
    days: int = 30,
) -> HostileCertificate:
    """A self-signed certificate (the subject is also the issuer); every occurrence of each
    ``patches`` key in the DER is replaced by its value, which must have the same length."""
    key = ec.generate_private_key(ec.SECP256R1())
    with warnings.catch_warnings():
        # Unvalidated: the 64-character limit on a common name is what a target ignores.
        warnings.simplefilter("ignore", UserWarning)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name, _validate=False)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    cert = builder.sign(key, hashes.SHA256())
    tbs = cert.tbs_certificate_bytes
    for old, new in (patches or {}).items():
        assert len(old) == len(new) and old in tbs, old
        tbs = tbs.replace(old, new)
    der = cert.public_bytes(serialization.Encoding.DER)
    outer_start, _ = _element(der, 0)
    _, tbs_end = _element(der, outer_start)
    _, algorithm_end = _element(der, tbs_end)
    algorithm = der[tbs_end:algorithm_end]
    signature = b"\x00" + key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    body = tbs + algorithm + b"\x03" + _length(len(signature)) + signature
    patched = b"\x30" + _length(len(body)) + body
    pem = ssl.DER_cert_to_PEM_cert(patched).encode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return HostileCertificate(pem, key_pem)


# A fake Event line hidden in a certificate name: ESC erases the line, CR/LF start a new one.
FORGED = "p\x1b[2K\r\n2026-12-01T00:00:00Z Normal TargetUp prod/payments-db"


def forging_certificate(extra_names: int = 1000) -> HostileCertificate:
    """FORGED as the common name and first DNS name, a 300-character name and
    ``extra_names`` more: log forging and status bounds in one certificate."""
    names = [FORGED, "a" * 300, *(f"n{i}.example" for i in range(extra_names))]
    return hostile_certificate(common_name=FORGED, dns_names=names)
