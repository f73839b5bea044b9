"""Certificates a hostile target presents: names that try to forge log lines or break status."""

from __future__ import annotations

import datetime
import ssl
import tempfile
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# A fake Event line hidden in a certificate name: ESC erases the line, CR/LF start a new one.
FORGED = "p\x1b[2K\r\n2026-12-01T00:00:00Z Normal TargetUp prod/payments-db"


def hostile_certificate_context(ca: trustme.CA, *, sans: int = 1000) -> ssl.SSLContext:
    """A server context whose certificate has FORGED as its CN and first SAN, a 300-character
    SAN and ``sans`` more, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(FORGED), x509.DNSName("a" * 300)]
    names += [x509.DNSName(f"n{i}.example") for i in range(sans)]
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FORGED)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    directory = Path(tempfile.mkdtemp(prefix="hostile-cert-"))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context
