"""OCSP material and the servers that serve it: ``openssl s_server -status_file`` stapling a
response, ``openssl ocsp`` answering as a CA's responder, and a Python server context made to
staple (for the scripted STARTTLS servers, which use Python's ssl)."""

from __future__ import annotations

import _ssl
import ctypes
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from .chains import Issued

_STARTUP_LINES = 20


def ocsp_response(
    leaf: Issued,
    issuer: Issued,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    *,
    signer: Issued | None = None,
    this_update: timedelta = timedelta(hours=-1),
    next_update: timedelta | None = timedelta(days=1),
    reason: x509.ReasonFlags | None = None,
) -> bytes:
    """A DER OCSP response about ``leaf``, signed by ``signer`` (default: the issuer); a
    signer other than the issuer is embedded, as delegated responders are."""
    now = datetime.now(UTC)
    signer = signer or issuer
    revoked = status is ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.cert,
        issuer=issuer.cert,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=now + this_update,
        next_update=now + next_update if next_update is not None else None,
        revocation_time=now - timedelta(days=2) if revoked else None,
        revocation_reason=reason if revoked else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if signer is not issuer:
        builder = builder.certificates([signer.cert])
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _key_pem(issued: Issued) -> bytes:
    return issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@contextmanager
def _openssl(args: list[str]) -> Iterator[int]:
    """Run an openssl server, yield the port from its ACCEPT line, kill it after."""
    child = subprocess.Popen(
        ["openssl", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert child.stdout is not None
        for _ in range(_STARTUP_LINES):
            line = child.stdout.readline()
            if not line:
                break
            if line.startswith("ACCEPT"):
                yield int(line.split()[1].rsplit(":", 1)[1])
                return
        raise RuntimeError(f"openssl {args[0]} did not start")
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


@contextmanager
def stapling_server(
    leaf: Issued, chain: list[Issued], staple: bytes | None, version: str = "tls1_3"
) -> Iterator[int]:
    """``openssl s_server`` on 127.0.0.1 presenting ``leaf`` and ``chain``, stapling ``staple``
    (nothing when None) with TLS ``version`` only ("tls1_2" or "tls1_3")."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, extra = Path(tmp, "leaf.pem"), Path(tmp, "key.pem"), Path(tmp, "chain.pem")
        cert.write_bytes(leaf.pem)
        key.write_bytes(_key_pem(leaf))
        extra.write_bytes(b"".join(c.pem for c in chain))
        args = ["s_server", "-accept", "127.0.0.1:0", "-cert", str(cert), "-key", str(key)]
        args += [f"-{version}", "-www"] + (["-cert_chain", str(extra)] if chain else [])
        if staple is not None:
            status = Path(tmp, "status.der")
            status.write_bytes(staple)
            args += ["-status_file", str(status)]
        with _openssl(args) as port:
            yield port


def _index_time(when: datetime) -> str:
    return when.strftime("%y%m%d%H%M%SZ")


def index_line(serial: int, name: str, revoked: bool = False) -> str:
    """A line of the CA database ``openssl ocsp -index`` reads: certificate ``serial``,
    subject CN=``name``, valid or revoked (keyCompromise, a day ago)."""
    expiry = _index_time(datetime.now(UTC) + timedelta(days=365))
    when = _index_time(datetime.now(UTC) - timedelta(days=1)) + ",keyCompromise" if revoked else ""
    state = "R" if revoked else "V"
    return f"{state}\t{expiry}\t{when}\t{serial:X}\tunknown\t/CN={name}\n"


@contextmanager
def ocsp_responder(issuer: Issued, lines: list[str], requests: int = 16) -> Iterator[int]:
    """``openssl ocsp`` answering for ``issuer`` from an index of ``lines``; it exits after
    ``requests`` requests, so a request beyond that is refused (how tests count them)."""
    with tempfile.TemporaryDirectory() as tmp:
        index, ca, key = Path(tmp, "index.txt"), Path(tmp, "ca.pem"), Path(tmp, "ca.key")
        index.write_text("".join(lines))
        ca.write_bytes(issuer.pem)
        key.write_bytes(_key_pem(issuer))
        args = ["ocsp", "-port", "0", "-index", str(index), "-CA", str(ca)]
        args += ["-rsigner", str(ca), "-rkey", str(key), "-nmin", "30"]
        args += ["-nrequest", str(requests)]
        with _openssl(args) as port:
            yield port


# --- a Python server context that staples -------------------------------------------------------

_SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63
_SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71
_StatusCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_kept: list[object] = []  # callbacks must outlive every handshake of the test process


def staple_from(context: ssl.SSLContext, response: bytes) -> ssl.SSLContext:
    """Make a Python server context staple ``response`` (SSL_CTX_set_tlsext_status_cb)."""
    library = ctypes.CDLL(_ssl.__file__)
    library.SSL_CTX_callback_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    library.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    library.CRYPTO_malloc.restype = ctypes.c_void_p
    library.CRYPTO_malloc.argtypes = [ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int]

    def on_status(ssl_pointer: int, _: int) -> int:
        copy = library.CRYPTO_malloc(len(response), b"test", 0)  # OpenSSL frees it
        ctypes.memmove(copy, response, len(response))
        library.SSL_ctrl(
            ssl_pointer, _SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP, len(response), copy
        )
        return 0  # SSL_TLSEXT_ERR_OK

    callback = _StatusCallback(on_status)
    _kept.append(callback)
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    library.SSL_CTX_callback_ctrl(
        pointer, _SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB, ctypes.cast(callback, ctypes.c_void_p)
    )
    return context
