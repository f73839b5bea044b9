"""Ask the server for a stapled OCSP response: the status_request extension in the ClientHello.

Python's ssl has no way to set it (SSL_CTX_set_tlsext_status_type is not exposed), and a second
TLS stack (pyOpenSSL) would mean the handshake that is measured is not the one judged. So the
one call is made through ctypes on the SSL_CTX that CPython's ``_ssl._SSLContext`` holds right
after its object header, with symbols looked up through the ``_ssl`` module's own handle (so
from the very libssl it links). The pointer is trusted only after OpenSSL, asked through it,
reads back the options Python reads through its own pointer, before and after a harmless
change: anything else (another interpreter, another layout, OpenSSL linked in statically and
hidden) turns the feature off for the process, and revocation is reported as not checked.
"""

from __future__ import annotations

import _ssl
import ctypes
import logging
import ssl
import sys
import threading
from typing import Any

_SSL_CTRL_SET_TLSEXT_STATUS_REQ_TYPE = 65
_SSL_CTRL_GET_TLSEXT_STATUS_REQ_TYPE = 127
_TLSEXT_STATUSTYPE_OCSP = 1
# Toggled and restored to prove the pointer: it only matters to a server, never to a client.
_PROBE_OPTION = ssl.OP_CIPHER_SERVER_PREFERENCE

UNSUPPORTED = "stapling request unsupported by this Python/OpenSSL"

_log = logging.getLogger(__name__)
_lock = threading.Lock()


class _State:
    functions: tuple[Any, Any] | None = None
    disabled: str | None = None  # why the feature is off for the process


def libssl_function(name: str, restype: Any, *argtypes: Any) -> Any:
    """A function of the very libssl the ``_ssl`` module links, typed for ctypes (CPython only;
    OSError when it cannot be reached)."""
    if sys.implementation.name != "cpython":
        raise OSError(f"not CPython ({sys.implementation.name})")
    path = getattr(_ssl, "__file__", None)
    if not path:
        raise OSError("the _ssl module is built in")
    function = getattr(ctypes.CDLL(path), name)
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


def _load() -> tuple[Any, Any]:
    ctrl = libssl_function(
        "SSL_CTX_ctrl", ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p
    )
    # uint64_t in OpenSSL 3, unsigned long in 1.1.1: the same width where CPython runs 64-bit.
    get_options = libssl_function("SSL_CTX_get_options", ctypes.c_uint64, ctypes.c_void_p)
    header = object.__basicsize__
    if _ssl._SSLContext.__basicsize__ < header + ctypes.sizeof(ctypes.c_void_p):
        raise OSError("unexpected _SSLContext layout")
    return ctrl, get_options


def _pointer(context: ssl.SSLContext) -> int | None:
    value = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    return value or None


def _proven(context: ssl.SSLContext, pointer: int, get_options: Any) -> bool:
    mask = (1 << 64) - 1
    if get_options(pointer) & mask != int(context.options) & mask:
        return False
    before = context.options
    context.options = before ^ _PROBE_OPTION
    try:
        return bool(get_options(pointer) & mask == int(context.options) & mask)
    finally:
        context.options = before


def proven_pointer(context: ssl.SSLContext) -> int | None:
    """The SSL_CTX* of ``context`` once it answers as the context does, else None.

    For probe/peer_state.py, which proves the SSL* of a connection against it. Never raises.
    """
    with _lock:
        try:
            if _State.functions is None:
                _State.functions = _load()
            pointer = _pointer(context)
            if pointer is None or not _proven(context, pointer, _State.functions[1]):
                return None
        except (OSError, AttributeError, ValueError, TypeError, ImportError):
            return None
        return pointer


def request_stapling(context: ssl.SSLContext) -> str | None:
    """Make ``context`` ask for a stapled OCSP response; None when done, else why not.

    Once per context (contexts are built once per monitor and shared). Never raises.
    """
    with _lock:
        if _State.disabled is not None:
            return _State.disabled
        try:
            if _State.functions is None:
                _State.functions = _load()
            ctrl, get_options = _State.functions
            pointer = _pointer(context)
            if pointer is None or not _proven(context, pointer, get_options):
                raise OSError("the SSL_CTX pointer does not answer as the context does")
            ctrl(pointer, _SSL_CTRL_SET_TLSEXT_STATUS_REQ_TYPE, _TLSEXT_STATUSTYPE_OCSP, None)
            got = ctrl(pointer, _SSL_CTRL_GET_TLSEXT_STATUS_REQ_TYPE, 0, None)
            if got != _TLSEXT_STATUSTYPE_OCSP:
                raise OSError(f"status type reads back as {got}")
        except (OSError, AttributeError, ValueError, TypeError, ImportError) as exc:
            _State.disabled = UNSUPPORTED
            _log.warning("OCSP stapling is not requested: %s (%s)", UNSUPPORTED, exc)
            return UNSUPPORTED
        return None
