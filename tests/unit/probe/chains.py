"""Certificate chains made with cryptography, for what trustme cannot make.

trustme issues sound certificates only; the chain tests need an intermediate that expires before
the leaf, SHA-1 and MD5 signatures, 1024-bit RSA and ECDSA keys, and a renewal with the same key.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Issued:
    """A certificate with its key, and the issuer that made it (None for a root)."""

    cert: x509.Certificate
    key: PrivateKey
    issuer: Issued | None = field(default=None, repr=False)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def issue(
        self,
        name: str,
        *,
        ca: bool = False,
        key: PrivateKey | None = None,
        days: tuple[float, float] = (-1, 365),
        hash_algorithm: hashes.HashAlgorithm | None = None,
        dns_names: tuple[str, ...] = ("localhost",),
        san: list[x509.GeneralName] | None = None,
        ocsp_url: str | None = None,
        extended_key_usage: list[x509.ObjectIdentifier] | None = None,
        serial: int | None = None,
    ) -> Issued:
        return issue(
            name,
            self,
            ca=ca,
            key=key,
            days=days,
            hash_algorithm=hash_algorithm,
            dns_names=dns_names,
            san=san,
            ocsp_url=ocsp_url,
            extended_key_usage=extended_key_usage,
            serial=serial,
        )


def issue(
    name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = True,
    key: PrivateKey | None = None,
    days: tuple[float, float] = (-1, 3650),
    hash_algorithm: hashes.HashAlgorithm | None = None,
    dns_names: tuple[str, ...] = ("localhost",),
    san: list[x509.GeneralName] | None = None,
    ocsp_url: str | None = None,
    extended_key_usage: list[x509.ObjectIdentifier] | None = None,
    serial: int | None = None,
) -> Issued:
    """A certificate for ``name`` signed by ``issuer`` (self-signed root when None).

    A leaf names ``dns_names``, or exactly ``san`` when given (an empty list: no SAN at all);
    ``ocsp_url`` goes into authorityInfoAccess.
    """
    key = key or rsa_key()
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        names = [x509.DNSName(n) for n in dns_names] if san is None else san
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ocsp_url is not None:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usage), critical=False)
    signer = issuer.key if issuer else key
    cert = builder.sign(signer, hashes.SHA256())
    if hash_algorithm is not None:
        cert = _resigned(cert, signer, hash_algorithm)
    return Issued(cert, key, issuer)


# sha256WithRSAEncryption and the legacy ones: the same length, differing in the last byte.
_RSA_SHA256 = bytes.fromhex("06092a864886f70d01010b")
_RSA_LEGACY = {"sha1": 0x05, "md5": 0x04}


def _resigned(
    cert: x509.Certificate, signer: PrivateKey, hash_algorithm: hashes.HashAlgorithm
) -> x509.Certificate:
    """``cert`` signed again with SHA-1 or MD5, which cryptography no longer signs with.

    The raw RSA signature still allows them; the algorithm identifier is patched in place (same
    length, so no DER length changes) and the new signature replaces the old one (same length
    for the same key).
    """
    assert isinstance(signer, rsa.RSAPrivateKey), "legacy signatures are made with RSA"
    legacy = _RSA_SHA256[:-1] + bytes([_RSA_LEGACY[hash_algorithm.name]])
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    assert der.count(_RSA_SHA256) == 2 and tbs.count(_RSA_SHA256) == 1
    new_tbs = tbs.replace(_RSA_SHA256, legacy)
    signature = signer.sign(new_tbs, padding.PKCS1v15(), hash_algorithm)
    assert len(signature) == len(cert.signature)
    body = der[: -len(signature)].replace(_RSA_SHA256, legacy)
    return x509.load_der_x509_certificate(body + signature)


def server_context(leaf: Issued, *chain: Issued, seclevel0: bool = False) -> ssl.SSLContext:
    """A server presenting ``leaf`` and then ``chain`` exactly as given (may be incomplete)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if seclevel0:
        # The server side too: OpenSSL refuses to *use* a 1024-bit or SHA-1 certificate at the
        # default security level, and these tests want a server that presents one.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "chain.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(leaf.pem + b"".join(c.pem for c in chain))
        key_path.write_bytes(
            leaf.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context
