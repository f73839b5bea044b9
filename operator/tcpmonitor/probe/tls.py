"""TLS contexts built once per monitor.

Building an SSLContext loads the trust store, which costs milliseconds; a scheduler probing
thousands of monitors must not pay that per probe, so contexts live in the compiled plan.
The server's certificates are inspected in ``certificate``: that needs cryptography, which a
runner without TLS monitors does not import (compiling a plan imports this module).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache

from ..api import TlsVersion
from .handshake_capture import capture_chains
from .peer_state import readers_work
from .stapling import request_stapling

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
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


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


@dataclass(frozen=True)
class Contexts:
    """The two client contexts of a monitor (see build_contexts)."""

    trusting: ssl.SSLContext
    inspecting: ssl.SSLContext
    # Why the contexts do not ask for a stapled OCSP response; None when they do.
    stapling_problem: str | None = None


@lru_cache(maxsize=512)
def build_contexts(
    min_version: TlsVersion,
    ca_pem: str | None,
    client: ClientCertificate | None,
    wide_ciphers: bool = False,
) -> Contexts:
    """A context that verifies the chain (not the host name), and one that verifies nothing.

    The trusting context judges the chain against the CA bundle or the system roots; the host
    name is judged apart on the leaf (probe/hostname.py), so that each verdict has its own
    reason: OpenSSL would stop at the first problem and report only that. insecureSkipVerify
    handshakes with the inspecting context and still asks the trusting one for a verdict.

    The inspecting context exists because OpenSSL hides the peer certificate when verification
    fails, and the certificate is exactly what a user needs to see then. Contexts are cached
    and shared: ten thousand monitors against the public roots need one trust store, not ten
    thousand.
    """
    inspecting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    inspecting.check_hostname = False
    inspecting.verify_mode = ssl.CERT_NONE
    trusting = ssl.create_default_context()
    if ca_pem is not None:
        trusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            trusting.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsSetupError(f"CA bundle does not load: {exc}") from None
    trusting.check_hostname = False  # judged in probe/hostname.py; verify_mode stays REQUIRED
    for context in (trusting, inspecting):
        context.minimum_version = _VERSIONS[min_version]
        if min_version in (TlsVersion.TLS1_0, TlsVersion.TLS1_1):
            # Asking for TLS 1.0/1.1 means talking to old servers; OpenSSL's default security
            # level would refuse them before the version is even negotiated.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        elif wide_ciphers:
            # Python's own list offers forward-secret AEAD ciphers only, so a server that
            # prefers RSA key exchange would fail the handshake instead of being seen using it
            # (the security baseline's cipher rule is there to report that).
            context.set_ciphers("DEFAULT")
        if client is not None:
            _load_client_certificate(context, client)
        if not readers_work(context):
            capture_chains(context)  # the hook is the fallback: see probe/peer_state.py
    problems = [request_stapling(context) for context in (trusting, inspecting)]
    return Contexts(trusting, inspecting, next((p for p in problems if p), None))
