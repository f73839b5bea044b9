"""Turning what the network and OpenSSL raise into stable error codes with a readable message.

Users alert on codes, so the mapping is explicit and exhaustive; anything unexpected becomes the
phase's generic code rather than an exception escaping the probe.
"""

from __future__ import annotations

import errno
import os
import ssl

from ..api import ErrorCode


class ProbeFailure(Exception):
    """A failed phase, already classified."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def drop_tracebacks(exc: BaseException | None) -> None:
    """Let go of the frames ``exc`` and the exceptions it was raised from keep.

    A failure kept after its ``except`` block (on the attempt, in a side handshake's outcome)
    holds, through its traceback, the frames it passed: the attempt itself, and in asyncio's
    frames the transport and the TLS protocol with OpenSSL's buffers. Those are cycles only
    the collector's rare full collection frees at ten thousand monitors, so the memory of
    every failed TLS probe would stay until then (tests/unit/probe/test_engine_cycles.py).
    """
    pending = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]


_CONNECT_ERRNO = {
    errno.ECONNREFUSED: ErrorCode.CONNECTION_REFUSED,
    errno.ETIMEDOUT: ErrorCode.CONNECT_TIMEOUT,
    errno.EHOSTUNREACH: ErrorCode.HOST_UNREACHABLE,
    errno.EHOSTDOWN: ErrorCode.HOST_UNREACHABLE,
    errno.ENETUNREACH: ErrorCode.NETWORK_UNREACHABLE,
    errno.ENETDOWN: ErrorCode.NETWORK_UNREACHABLE,
    errno.EADDRNOTAVAIL: ErrorCode.NETWORK_UNREACHABLE,
    errno.ECONNRESET: ErrorCode.CONNECTION_RESET,
    errno.EPIPE: ErrorCode.CONNECTION_RESET,
    errno.ECONNABORTED: ErrorCode.CONNECTION_RESET,
}


def describe_os_error(exc: OSError) -> str:
    # asyncio's connect errors carry "Connect call failed (...)" as strerror; the errno's own
    # text ("Connection refused") is what people search for.
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


def classify_socket_error(exc: OSError, address: str) -> ProbeFailure:
    """A connect or I/O error on a plain socket."""
    code = _CONNECT_ERRNO.get(exc.errno or 0)
    if code is None:
        if isinstance(exc, ConnectionResetError):
            code = ErrorCode.CONNECTION_RESET
        elif isinstance(exc, ConnectionRefusedError):
            code = ErrorCode.CONNECTION_REFUSED
        else:
            code = ErrorCode.NETWORK_UNREACHABLE
    return ProbeFailure(code, f"{address}: {describe_os_error(exc)}")


# OpenSSL X509_V_ERR_* codes we name; the rest are "untrusted" or a generic handshake failure.
_VERIFY_CODES = {
    9: ErrorCode.TLS_CERTIFICATE_NOT_YET_VALID,
    10: ErrorCode.TLS_CERTIFICATE_EXPIRED,
    62: ErrorCode.TLS_HOSTNAME_MISMATCH,
    64: ErrorCode.TLS_HOSTNAME_MISMATCH,
    2: ErrorCode.TLS_UNTRUSTED_CERTIFICATE,
    18: ErrorCode.TLS_UNTRUSTED_CERTIFICATE,
    19: ErrorCode.TLS_UNTRUSTED_CERTIFICATE,
    20: ErrorCode.TLS_UNTRUSTED_CERTIFICATE,
    21: ErrorCode.TLS_UNTRUSTED_CERTIFICATE,
    27: ErrorCode.TLS_UNTRUSTED_CERTIFICATE,
    28: ErrorCode.TLS_UNTRUSTED_CERTIFICATE,
}

_VERSION_REASONS = {
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "WRONG_SSL_VERSION",
    "TLSV1_ALERT_INAPPROPRIATE_FALLBACK",
}

_REASON_TEXT = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected the client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the client certificate's CA",
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server refused the handshake (no common cipher or "
    "a client certificate is required)",
}


def classify_tls_error(exc: BaseException, address: str) -> ProbeFailure:
    """An exception from the TLS handshake (or a TLS alert that arrived right after it)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = _VERIFY_CODES.get(exc.verify_code, ErrorCode.TLS_HANDSHAKE_FAILED)
        return ProbeFailure(code, f"certificate verify failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _VERSION_REASONS:
            return ProbeFailure(
                ErrorCode.TLS_VERSION_TOO_OLD,
                f"no TLS version in common at or above the minimum ({reason})",
            )
        text = _REASON_TEXT.get(reason, reason or str(exc))
        return ProbeFailure(ErrorCode.TLS_HANDSHAKE_FAILED, f"TLS handshake failed: {text}")
    if isinstance(exc, ConnectionResetError) and "lost" in str(exc).lower():
        # asyncio's TLS layer reports a plain close by the peer this way.
        return ProbeFailure(
            ErrorCode.CONNECTION_CLOSED, f"{address}: closed by the peer during the TLS handshake"
        )
    if isinstance(exc, OSError):
        return classify_socket_error(exc, address)
    return ProbeFailure(ErrorCode.TLS_HANDSHAKE_FAILED, f"TLS handshake failed: {exc!r}")
