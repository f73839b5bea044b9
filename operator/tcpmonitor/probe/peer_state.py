"""The presented chain and the stapled OCSP response, read from OpenSSL once the handshake is done.

chain.py's message hook hears every record of every handshake: some 25 Python calls, each with a
fresh bytes object, about 5% of a probe's CPU, to keep two messages. OpenSSL keeps what they
carried anyway: the chain in the server's order (``SSL_get_peer_cert_chain``, which CPython 3.11
exposes privately as ``_SSLSocket.get_unverified_chain``, public as
``SSLObject.get_unverified_chain`` in 3.13), and the staple, from a TLS 1.2 CertificateStatus or
a TLS 1.3 status_request in the leaf's entry alike (``SSL_get_tlsext_status_ocsp_resp``, a macro
over ``SSL_ctrl``, called through ctypes on the very libssl ``_ssl`` links, as stapling.py does).

The SSL* is read from the ``_ssl._SSLSocket`` right after its object header and the weak
reference to its socket, with the context object after it (CPython's ``PySSLSocket``). It is
trusted only after a proof, once per process, on a fresh connection object of a real context:
the word after it must be that context object, and OpenSSL, asked through it, must name the
context's own SSL_CTX (proven by stapling.py), call it a client and hold no staple yet. Anything
else turns these readers off for the process, and contexts keep the hook (see tls.py).
"""

from __future__ import annotations

import _ssl
import ctypes
import logging
import ssl
import threading
from typing import Any

from ..api.result import MAX_CHAIN
from . import stapling

_SSL_CTRL_GET_TLSEXT_STATUS_REQ_OCSP_RESP = 70
_WORD = ctypes.sizeof(ctypes.c_void_p)
# PySSLSocket: PyObject_HEAD, PyObject *Socket, SSL *ssl, PySSLContext *ctx, ...
SSL_OFFSET = object.__basicsize__ + _WORD
_DER = getattr(_ssl, "ENCODING_DER", 1)
_SSLSocket: Any = getattr(_ssl, "_SSLSocket", None)  # private: typeshed does not know it

_log = logging.getLogger(__name__)
_lock = threading.Lock()


class _State:
    functions: tuple[Any, Any, Any] | None = None  # SSL_get_SSL_CTX, SSL_is_server, SSL_ctrl
    proven = False
    disabled: str | None = None  # why the readers are off for the process


def _load() -> tuple[Any, Any, Any]:
    pointer = ctypes.c_void_p
    return (
        stapling.libssl_function("SSL_get_SSL_CTX", pointer, pointer),
        stapling.libssl_function("SSL_is_server", ctypes.c_int, pointer),
        stapling.libssl_function(
            "SSL_ctrl", ctypes.c_long, pointer, ctypes.c_int, ctypes.c_long, pointer
        ),
    )


def _word(address: int) -> int | None:
    return ctypes.c_void_p.from_address(address).value


def prove(context: ssl.SSLContext, offset: int = SSL_OFFSET) -> str | None:
    """None when the SSL* of ``context``'s connections is at ``offset`` and answers; else why not.

    Reads memory only inside the object, and asks OpenSSL through the pointer only after the
    word beside it has proven to be the context object: a wrong layout is refused, not called.
    """
    if _SSLSocket is None or not hasattr(_SSLSocket, "get_unverified_chain"):
        return "no _SSLSocket.get_unverified_chain"
    if _SSLSocket.__basicsize__ < offset + 2 * _WORD:
        return "unexpected _SSLSocket layout"
    ctx_pointer = stapling.proven_pointer(context)
    if ctx_pointer is None:
        return "the context's SSL_CTX pointer is not proven"
    if _State.functions is None:
        _State.functions = _load()
    get_ctx, is_server, ctrl = _State.functions
    connection = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    sslobj = connection._sslobj  # type: ignore[attr-defined]
    if type(sslobj) is not _SSLSocket:
        return f"the connection object is a {type(sslobj).__name__}"
    if _word(id(sslobj) + offset + _WORD) != id(context):
        return "the word after the SSL pointer is not the context"
    pointer = _word(id(sslobj) + offset)
    if not pointer or get_ctx(pointer) != ctx_pointer:
        return "the SSL pointer does not name the context's SSL_CTX"
    if is_server(pointer) != 0:
        return "the SSL pointer says it is a server"
    staple = ctypes.c_void_p()
    if ctrl(pointer, _SSL_CTRL_GET_TLSEXT_STATUS_REQ_OCSP_RESP, 0, ctypes.byref(staple)) != -1:
        return "a connection not yet made already holds a staple"
    if sslobj.get_unverified_chain() is not None:
        return "a connection not yet made already holds a chain"
    return None


def readers_work(context: ssl.SSLContext) -> bool:
    """Whether the chain and staple of ``context``'s connections can be read after the handshake.

    Proven on the first context asked (the layout is the type's, the same for every context);
    False for the process once the proof failed, and the caller keeps the hook. Never raises.
    """
    with _lock:
        if _State.disabled is not None:
            return False
        if _State.proven:
            return True
        try:
            why = prove(context)
        except (OSError, AttributeError, ValueError, TypeError, ssl.SSLError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        if why is not None:
            fall_back(why)
            return False
        _State.proven = True
        return True


def fall_back(why: str) -> None:
    """Turn the readers off for the process: contexts built from now on keep the hook."""
    _State.disabled = why
    _State.proven = False
    _log.warning("the chain and staple are read by the handshake hook: %s", why)


def active() -> bool:
    """True once the readers are proven (and not turned off since)."""
    return _State.proven


def _ssl_pointer(ssl_object: object) -> tuple[Any, int] | None:
    sslobj: Any = getattr(ssl_object, "_sslobj", None)
    if sslobj is None or type(sslobj) is not _SSLSocket:
        return None
    # The proof held for the type; this checks the instance as cheaply (its context field).
    if _word(id(sslobj) + SSL_OFFSET + _WORD) != id(sslobj.context):
        return None
    pointer = _word(id(sslobj) + SSL_OFFSET)
    return (sslobj, pointer) if pointer else None


def read_chain(ssl_object: object) -> tuple[list[bytes], int] | None:
    """(DER certificates as presented, leaf first, at most MAX_CHAIN; how many were presented).

    None when no chain was received (or the connection object is not what was proven).
    """
    found = _ssl_pointer(ssl_object)
    if found is None:
        return None
    certificates = found[0].get_unverified_chain()
    if certificates is None:
        return None
    return [c.public_bytes(_DER) for c in certificates[:MAX_CHAIN]], len(certificates)


def read_staple(ssl_object: object, bound: int) -> bytes | None:
    """The stapled DER OCSP response; None when none was stapled, ``b""`` when over ``bound``."""
    found = _ssl_pointer(ssl_object)
    if found is None or _State.functions is None:
        return None
    staple = ctypes.c_void_p()
    size = _State.functions[2](
        found[1], _SSL_CTRL_GET_TLSEXT_STATUS_REQ_OCSP_RESP, 0, ctypes.byref(staple)
    )
    if size < 0 or not staple.value:
        return None
    if size > bound:
        return b""  # reported as a staple that does not parse, as the hook's reading does
    return ctypes.string_at(staple.value, size)
