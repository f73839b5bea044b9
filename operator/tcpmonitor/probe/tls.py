"""TLS contexts built once per monitor, and inspection of the server certificate.

Building an SSLContext loads the trust store, which costs milliseconds; a scheduler probing
thousands of monitors must not pay that per probe, so contexts live in the compiled plan.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509

from ..api import Certificate, TlsVersion
from ..api.result import MAX_DNS_NAMES

_VERSIONS = {
    TlsVersion.TLS1_0: ssl.TLSVersion.TLSv1,
    TlsVersion.TLS1_1: ssl.TLSVersion.TLSv1_1,
    TlsVersion.TLS1_2: ssl.TLSVersion.TLSv1_2,
    TlsVersion.TLS1_3: ssl.TLSVersion.TLSv1_3,
}


class TlsSetupError(ValueError):
    """CA bundle or client certificate material that OpenSSL will not load."""


@dataclass(frozen=True)
class ClientCertificate:
    cert_pem: bytes
    key_pem: bytes


def _load_client_certificate(context: ssl.SSLContext, client: ClientCertificate) -> None:
    # load_cert_chain reads files only; a private temporary directory keeps the key off any
    # shared path and works with a read-only root filesystem as long as TMPDIR is writable.
    with tempfile.TemporaryDirectory(prefix="tcpmonitor-") as tmp:
        cert_path = os.path.join(tmp, "tls.crt")
        key_path = os.path.join(tmp, "tls.key")
        for path, data in ((cert_path, client.cert_pem), (key_path, client.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        try:
            context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, OSError) as exc:
            raise TlsSetupError(f"client certificate or key does not load: {exc}") from None


@lru_cache(maxsize=512)
def build_contexts(
    min_version: TlsVersion,
    ca_pem: str | None,
    client: ClientCertificate | None,
    insecure: bool,
) -> tuple[ssl.SSLContext | None, ssl.SSLContext]:
    """(verifying context or None when insecure, inspecting context that verifies nothing).

    The inspecting context exists because OpenSSL hides the peer certificate when verification
    fails, and the certificate is exactly what a user needs to see then. Contexts are cached
    and shared: ten thousand monitors against the public roots need one trust store, not ten
    thousand.
    """
    inspecting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    inspecting.check_hostname = False
    inspecting.verify_mode = ssl.CERT_NONE
    contexts = [inspecting]
    verifying: ssl.SSLContext | None = None
    if not insecure:
        verifying = ssl.create_default_context()
        if ca_pem is not None:
            verifying = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            try:
                verifying.load_verify_locations(cadata=ca_pem)
            except (ssl.SSLError, ValueError) as exc:
                raise TlsSetupError(f"CA bundle does not load: {exc}") from None
        contexts.append(verifying)
    for context in contexts:
        context.minimum_version = _VERSIONS[min_version]
        if min_version in (TlsVersion.TLS1_0, TlsVersion.TLS1_1):
            # Asking for TLS 1.0/1.1 means talking to old servers; OpenSSL's default security
            # level would refuse them before the version is even negotiated.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        if client is not None:
            _load_client_certificate(context, client)
    return verifying, inspecting


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.DNSName))[:MAX_DNS_NAMES]


def inspect_certificate(der: bytes, now: datetime | None = None) -> Certificate:
    """The summary users need, above all ``notAfter``, from a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.now(UTC)
    not_after = cert.not_valid_after_utc
    digest = hashlib.sha256(der).hexdigest().upper()
    return Certificate.model_construct(
        subject=cert.subject.rfc4514_string()[:1024],
        issuer=cert.issuer.rfc4514_string()[:1024],
        dns_names=_dns_names(cert),
        not_before=cert.not_valid_before_utc,
        not_after=not_after,
        days_remaining=round((not_after - now).total_seconds() / 86400, 3),
        sha256_fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
    )
