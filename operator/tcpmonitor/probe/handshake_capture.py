"""The certificate chain and the stapled OCSP response as the server sent them, captured from
the handshake's messages without parsing a certificate.

Python 3.11's ssl shows the leaf only (``getpeercert``); ``SSLObject.get_unverified_chain``
arrives in 3.13. Where probe/peer_state.py proves it can, both are read from OpenSSL once the
handshake is done. Elsewhere they are read from the handshake itself: the server's Certificate
(and TLS 1.2 CertificateStatus) message, which OpenSSL hands to ``SSLContext._msg_callback``
decrypted (TLS 1.3 encrypts it on the wire, so parsing the raw TCP bytes would not do). That hook
is private but has existed unchanged since Python 3.8 and still does in 3.13; where both are
missing no chain is reported (the leaf still is, from getpeercert).
Either way the chain is also read when verification fails, from the same inspecting connection
that reads the leaf, and never depends on OpenSSL trusting anything.

Apart from the inspection of the certificates (``chain``, ``certificate``), which needs
cryptography: the contexts (``tls``) install this hook, and a runner whose monitors are not
TLS never imports cryptography.
"""

from __future__ import annotations

import _ssl
import contextlib
import ssl
import weakref

from ..api.result import MAX_CHAIN
from . import peer_state

# At most this many entries are even counted: OpenSSL already refuses a certificate list over
# 100 KiB (SSL_CTX_set_max_cert_list), this bounds the loop independently of it.
_MAX_ENTRIES = 256
_HANDSHAKE = 22
_CERTIFICATE = 11
_CERTIFICATE_STATUS = 22
_STATUS_REQUEST = 5  # the TLS 1.3 extension carrying the stapled response in a certificate
_OCSP = 1
# A stapled response above this is not read: real ones are 1-4 KiB.
MAX_STAPLE = 16 * 1024
_TLS1_3 = 0x0304

# The Certificate message each connection received, by SSLObject; weak, so a connection that
# is gone takes its entry with it and nothing has to be cleaned up.
_received: weakref.WeakKeyDictionary[object, tuple[int, bytes]] = weakref.WeakKeyDictionary()
# The TLS 1.2 CertificateStatus message (the stapled OCSP response), likewise.
_status: weakref.WeakKeyDictionary[object, bytes] = weakref.WeakKeyDictionary()


def _on_message(
    conn: object, direction: str, version: int, content_type: int, msg_type: int, data: bytes
) -> None:
    # Called by OpenSSL for every record and handshake message, inside the handshake: it must
    # not raise (nothing here can). ``version`` is the message's protocol version, which says
    # how the message is laid out. Only the first Certificate counts: a renegotiation would
    # send another, and the first decided the handshake.
    if direction != "read" or content_type != _HANDSHAKE:
        return
    if msg_type == _CERTIFICATE and conn not in _received:
        _received[conn] = (version, bytes(data))
    elif msg_type == _CERTIFICATE_STATUS and conn not in _status:
        # Cut, not dropped: an oversized staple is reported as one that does not parse.
        _status[conn] = bytes(data[: MAX_STAPLE + 8])


def capture_chains(context: ssl.SSLContext) -> None:
    """Make ``context`` keep the Certificate message of each connection (see module doc).

    The callback is set on the C context, below ``ssl.SSLContext._msg_callback``'s property:
    that property wraps it in a function turning every argument into an enum, a dozen enum
    look-ups per TLS record, which cost more than all the rest of the hook; ``_on_message``
    compares plain integers and needs none. Without the hook (a future Python) the chain is
    simply not reported.
    """
    raw = getattr(_ssl._SSLContext, "_msg_callback", None)
    if raw is not None and hasattr(raw, "__set__"):
        with contextlib.suppress(AttributeError, TypeError):
            raw.__set__(context, _on_message)
            return
    with contextlib.suppress(AttributeError):
        context._msg_callback = _on_message  # type: ignore[attr-defined]


def presented_chain(ssl_object: object) -> tuple[list[bytes], int] | None:
    """(DER certificates of the chain, leaf first, at most MAX_CHAIN; how many were presented).

    None when no chain could be read (neither peer_state's reader nor the hook works here).
    """
    if peer_state.active():
        read = peer_state.read_chain(ssl_object)
        if read is None:
            return None
        ders, count = read
        # Counted as the hook counts: at most one beyond the entries it walks.
        return ders, min(count, _MAX_ENTRIES + 1)
    return captured_chain(ssl_object)


def stapled_response(ssl_object: object) -> bytes | None:
    """The DER OCSP response the server stapled, None when it stapled none.

    ``b""`` when one was stapled but is over MAX_STAPLE or does not parse: the judge reports a
    response that does not parse.
    """
    if peer_state.active():
        return peer_state.read_staple(ssl_object, MAX_STAPLE)
    return captured_staple(ssl_object)


def captured_chain(ssl_object: object) -> tuple[list[bytes], int] | None:
    """presented_chain from the hook's Certificate message (capture_chains).

    None when the message was not seen (hook missing) or does not parse.
    """
    received = _received.get(ssl_object)
    if received is None:
        return None
    version, message = received
    try:
        return parse_certificate_message(message, version)
    except ValueError:
        return None


def captured_staple(ssl_object: object) -> bytes | None:
    """stapled_response from the messages the hook kept (capture_chains).

    TLS 1.2 sends it in a CertificateStatus message, TLS 1.3 in the status_request extension
    of the leaf's entry in the Certificate message; both carry the same CertificateStatus.
    A status that was sent but does not parse (or is over MAX_STAPLE) is ``b""``, which the
    judge reports as a response that does not parse.
    """
    message = _status.get(ssl_object)
    if message is not None:
        try:
            return parse_certificate_status(message[4 : 4 + int.from_bytes(message[1:4], "big")])
        except ValueError:
            return b""
    received = _received.get(ssl_object)
    if received is None or received[0] != _TLS1_3:
        return None
    try:
        body = leaf_status_extension(received[1])
    except ValueError:
        return None  # the Certificate message itself is broken: the chain says so
    if body is None:
        return None
    try:
        return parse_certificate_status(body)
    except ValueError:
        return b""


def parse_certificate_status(body: bytes) -> bytes:
    """The DER OCSPResponse of a CertificateStatus body (RFC 6066 8); ValueError if malformed."""
    if len(body) < 4 or body[0] != _OCSP:
        raise ValueError("not an OCSP CertificateStatus")
    size = int.from_bytes(body[1:4], "big")
    if size == 0 or size > MAX_STAPLE or 4 + size > len(body):
        raise ValueError("OCSP response empty, too large or truncated")
    return body[4 : 4 + size]


def leaf_status_extension(message: bytes) -> bytes | None:
    """The status_request extension of the first entry of a TLS 1.3 Certificate message."""
    if len(message) < 4 or message[0] != _CERTIFICATE:
        raise ValueError("not a Certificate message")
    end = min(len(message), 4 + int.from_bytes(message[1:4], "big"))
    pos = 4
    if pos >= end:
        raise ValueError("truncated request context")
    pos += 1 + message[pos]
    if pos + 6 > end:
        return None  # no certificate at all
    pos += 3  # the list's length; the first entry follows
    pos += 3 + int.from_bytes(message[pos : pos + 3], "big")
    if pos + 2 > end:
        raise ValueError("truncated certificate extensions")
    ext_end = pos + 2 + int.from_bytes(message[pos : pos + 2], "big")
    pos += 2
    if ext_end > end:
        raise ValueError("extensions longer than the message")
    for _ in range(64):
        if pos + 4 > ext_end:
            break
        kind = int.from_bytes(message[pos : pos + 2], "big")
        size = int.from_bytes(message[pos + 2 : pos + 4], "big")
        pos += 4
        if pos + size > ext_end:
            raise ValueError("extension longer than the list")
        if kind == _STATUS_REQUEST:
            return message[pos : pos + size]
        pos += size
    return None


def parse_certificate_message(message: bytes, version: int) -> tuple[list[bytes], int]:
    """The certificates of a TLS Certificate handshake message (RFC 5246 7.4.2, RFC 8446 4.4.2).

    ``message`` starts with the handshake header (type, 24-bit length). TLS 1.3 adds a request
    context before the list and extensions after each certificate. ValueError when malformed.
    """
    if len(message) < 4 or message[0] != _CERTIFICATE:
        raise ValueError("not a Certificate message")
    end = min(len(message), 4 + int.from_bytes(message[1:4], "big"))
    pos = 4
    if version == _TLS1_3:
        if pos >= end:
            raise ValueError("truncated request context")
        pos += 1 + message[pos]
    if pos + 3 > end:
        raise ValueError("truncated certificate list")
    list_end = pos + 3 + int.from_bytes(message[pos : pos + 3], "big")
    pos += 3
    if list_end > end:
        raise ValueError("certificate list longer than the message")
    ders: list[bytes] = []
    count = 0
    while pos < list_end and count < _MAX_ENTRIES:
        if pos + 3 > list_end:
            raise ValueError("truncated certificate length")
        size = int.from_bytes(message[pos : pos + 3], "big")
        pos += 3
        if size == 0 or pos + size > list_end:
            raise ValueError("certificate longer than the list")
        if len(ders) < MAX_CHAIN:
            ders.append(message[pos : pos + size])
        pos += size
        count += 1
        if version == _TLS1_3:
            if pos + 2 > list_end:
                raise ValueError("truncated certificate extensions")
            pos += 2 + int.from_bytes(message[pos : pos + 2], "big")
    if pos < list_end:  # more than _MAX_ENTRIES: counted as at least that many
        count += 1
    return ders, count
