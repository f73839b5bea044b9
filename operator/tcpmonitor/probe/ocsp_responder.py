"""tls.revocation.queryResponder: ask the leaf's OCSP responder, and remember its answer.

Only when the server stapled nothing, and only over http:// (OCSP is signed, so it needs no
TLS, and every public responder speaks plain HTTP). A small HTTP/1.0 client of our own rather
than a client library: one POST, one response read to a bound, closed after; the whole
exchange fits in the probe's deadline. Answers are remembered per (issuer key, serial) until
their nextUpdate and at most an hour, failures for a minute: ten thousand monitors of one site
ask the responder about once an hour, not every probe.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import time
from collections import OrderedDict
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..api.result import RevocationInfo, RevocationSource, RevocationStatus
from ..policy import TargetGuard
from .revocation import build_request, info, judge_response, responder_url

MAX_ENTRIES = 4096
MAX_AGE = 3600.0
FAILURE_AGE = 60.0
TIMEOUT = 5.0
MIN_TIME = 0.1
MAX_RESPONSE = 16 * 1024
_MAX_HEADERS = 8 * 1024

_Key = tuple[bytes, int]
_RESPONDER = RevocationSource.RESPONDER


class ResponderCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[_Key, tuple[RevocationInfo, float]] = OrderedDict()

    def get(self, key: _Key, now: float) -> RevocationInfo | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: _Key, answer: RevocationInfo, now: float) -> None:
        if answer.status in (
            RevocationStatus.GOOD,
            RevocationStatus.REVOKED,
            RevocationStatus.UNKNOWN,
        ):
            until = now + MAX_AGE
            if answer.next_update is not None:
                until = min(until, answer.next_update.timestamp())
        else:
            until = now + FAILURE_AGE
        self._entries[key] = (answer, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


RESPONDER_CACHE = ResponderCache()


class ResponderError(Exception):
    """The responder could not be asked, or its answer is not an OCSP response over HTTP."""


async def _connect(
    host: str, port: int, guard: TargetGuard | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the responder, to an address the target policy allows: the URL comes
    from a certificate, so it is one more target the monitor's author could point anywhere."""
    if guard is None:
        return await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    refused = []
    for _, _, _, _, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        decision = guard.check(host, ipaddress.ip_address(address), port)
        if decision.allowed:
            return await asyncio.open_connection(address, port)
        refused.append(f"{address}: {decision.describe()}")
    raise ResponderError(f"responder {host}: " + "; ".join(refused[:4]) + " (target policy)")


async def post_ocsp(
    url: str, request: bytes, seconds: float, guard: TargetGuard | None = None
) -> bytes:
    """POST ``request`` to an http:// OCSP responder; the DER body of its 200 response."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ResponderError(f"responder URL {url} is not http://")
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    head = (
        f"POST {path} HTTP/1.0\r\nHost: {netloc}\r\nContent-Type: application/ocsp-request\r\n"
        f"Accept: application/ocsp-response\r\nContent-Length: {len(request)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii", "replace")
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(seconds):
            reader, writer = await _connect(host, port, guard)
            writer.write(head + request)
            await writer.drain()
            data = await reader.read(_MAX_HEADERS + MAX_RESPONSE + 1)
            while data and len(data) <= _MAX_HEADERS + MAX_RESPONSE:
                more = await reader.read(_MAX_HEADERS + MAX_RESPONSE + 1 - len(data))
                if not more:
                    break
                data += more
    except TimeoutError:
        raise ResponderError(f"{url}: no answer within {seconds:.1f}s") from None
    except OSError as exc:
        raise ResponderError(f"{url}: {exc.strerror or exc}") from None
    finally:
        if writer is not None:
            writer.transport.abort()
    header, found, body = data.partition(b"\r\n\r\n")
    if not found or len(header) > _MAX_HEADERS:
        raise ResponderError(f"{url}: not an HTTP response")
    if len(body) > MAX_RESPONSE:
        raise ResponderError(f"{url}: response larger than {MAX_RESPONSE} bytes")
    status_line = header.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or fields[1] != "200":
        raise ResponderError(f"{url}: answered {status_line[:80]!r}")
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            body = body[: int(value.strip())]
    if not body:
        raise ResponderError(f"{url}: empty response")
    return body


async def ask_responder(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    seconds: float,
    cache: ResponderCache = RESPONDER_CACHE,
    guard: TargetGuard | None = None,
) -> RevocationInfo:
    """The responder's verdict on ``leaf``, cached; never raises.

    A failure to ask is notChecked with source responder (the engine's
    TLS_OCSP_RESPONDER_FAILED); an answer that cannot be believed is invalid.
    """
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = (hashlib.sha256(spki).digest(), leaf.serial_number)
    now = time.time()
    cached = cache.get(key, now)
    if cached is not None:
        return cached
    if seconds < MIN_TIME:
        # The probe's own timeout is all but spent: nothing learnt, so nothing remembered.
        why = "no time left to ask the OCSP responder"
        return info(RevocationStatus.NOT_CHECKED, why, _RESPONDER)
    url = responder_url(leaf)
    if url is None:
        return info(RevocationStatus.NOT_CHECKED, "the leaf names no OCSP responder")
    try:
        body = await post_ocsp(url, build_request(leaf, issuer), min(seconds, TIMEOUT), guard)
    except ResponderError as exc:
        answer = info(RevocationStatus.NOT_CHECKED, str(exc), _RESPONDER)
    else:
        answer = judge_response(body, leaf, issuer, datetime.now(UTC), _RESPONDER)
        if (
            answer.status is RevocationStatus.INVALID
            and answer.message
            and ("TRY_LATER" in answer.message or "INTERNAL_ERROR" in answer.message)
        ):
            answer = info(RevocationStatus.NOT_CHECKED, f"{url}: {answer.message}", _RESPONDER)
    cache.put(key, answer, time.time())
    return answer
