"""LDAP v3 (RFC 4511): a search of the root DSE (what the server is), anonymous and without a
bind; with STARTTLS, the StartTLS extended operation (RFC 4513) first.

A server that refuses the anonymous search still answers with a result code: LDAP answering.
"""

from __future__ import annotations

from ..session import Session
from . import ber

_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_SEARCH_REQUEST = 0x63  # [APPLICATION 3]
_SEARCH_ENTRY = 0x64
_SEARCH_DONE = 0x65
_EXTENDED_REQUEST = 0x77
_EXTENDED_RESPONSE = 0x78
_PRESENT_FILTER = 0x87  # [7] present, primitive
_ATTRIBUTES = (b"vendorName", b"vendorVersion", b"supportedLDAPVersion")
_MAX_MESSAGE = 48 * 1024
_MAX_MESSAGES = 8  # a root DSE search answers with one entry and one done


def _message(message_id: int, operation: bytes) -> bytes:
    return ber.element(ber.SEQUENCE, ber.integer(message_id) + operation)


def _root_dse_search(message_id: int) -> bytes:
    request = (
        ber.element(ber.OCTET_STRING, b"")  # baseObject: the root DSE
        + ber.integer(0, ber.ENUMERATED)  # scope: baseObject
        + ber.integer(0, ber.ENUMERATED)  # derefAliases: never
        + ber.integer(1)  # sizeLimit
        + ber.integer(5)  # timeLimit, seconds
        + ber.element(ber.BOOLEAN, b"\x00")  # typesOnly
        + ber.element(_PRESENT_FILTER, b"objectClass")
        + ber.element(ber.SEQUENCE, b"".join(ber.element(ber.OCTET_STRING, a) for a in _ATTRIBUTES))
    )
    return _message(message_id, ber.element(_SEARCH_REQUEST, request))


def _message_framer(data: bytes) -> int | None:
    try:
        found = ber.header(data)
    except ValueError:
        return len(data)
    if found is None:
        return None
    tag, start, length = found
    if tag != ber.SEQUENCE or length > _MAX_MESSAGE:
        return len(data)  # not an LDAPMessage: hand it over whole, to be refused
    return start + length if len(data) >= start + length else None


async def _read(session: Session, message_id: int, expected: str) -> tuple[int, bytes]:
    """(operation tag, operation value) of the next LDAPMessage answering ``message_id``."""
    raw = await session.read(_message_framer, expected)
    try:
        ((_, body),) = ber.children(raw)
        parts = list(ber.children(body))
    except ValueError:
        raise session.protocol_error(expected, raw) from None
    if len(parts) < 2 or parts[0][0] != ber.INTEGER:
        raise session.protocol_error(expected, raw)
    answered = int.from_bytes(parts[0][1], "big")
    if answered == 0:
        # A notice of disconnection: the server is closing on us, saying why.
        raise session.protocol_error(expected, _diagnostic(parts[1][1]).encode() or raw)
    if answered != message_id:
        raise session.protocol_error(expected, raw)
    return parts[1]


def _result(value: bytes) -> tuple[int, str]:
    """(resultCode, diagnosticMessage) of an LDAPResult."""
    parts = list(ber.children(value))
    if not parts or parts[0][0] != ber.ENUMERATED:
        raise ValueError("not an LDAPResult")
    message = parts[2][1].decode("utf-8", "replace") if len(parts) > 2 else ""
    return int.from_bytes(parts[0][1], "big"), message


def _diagnostic(value: bytes) -> str:
    try:
        code, message = _result(value)
    except ValueError:
        return ""
    return f"result {code} {message}".strip()


def _entry_detail(value: bytes) -> str:
    found: dict[bytes, bytes] = {}
    parts = list(ber.children(value))
    if len(parts) == 2:
        for _, attribute in ber.children(parts[1][1]):
            pair = list(ber.children(attribute))
            if len(pair) == 2:
                values = [v for _, v in ber.children(pair[1][1])]
                if values:
                    found[pair[0][1].lower()] = b" ".join(values)
    words = [found.get(b"vendorname", b""), found.get(b"vendorversion", b"")]
    text = " ".join(w.decode("utf-8", "replace") for w in words if w)
    versions = found.get(b"supportedldapversion")
    if versions:
        text = f"{text}, " if text else ""
        text += f"LDAP versions {versions.decode('latin-1')}"
    return text or "root DSE readable"


async def _start_tls(session: Session) -> None:
    request = ber.element(0x80, _STARTTLS_OID)  # [0] requestName
    session.send(_message(1, ber.element(_EXTENDED_REQUEST, request)))
    expected = "an LDAP ExtendedResponse to StartTLS"
    tag, value = await _read(session, 1, expected)
    try:
        code, message = _result(value)
    except ValueError:
        raise session.protocol_error(expected, value) from None
    if tag != _EXTENDED_RESPONSE:
        raise session.protocol_error(expected, value)
    if code != 0:
        raise session.starttls_refused(f"StartTLS refused: result {code} {message}".strip())
    await session.start_tls()


async def converse(session: Session, start_tls: bool) -> None:
    if start_tls:
        await _start_tls(session)
    session.send(_root_dse_search(2))
    expected = "an LDAP search result"
    for _ in range(_MAX_MESSAGES):
        tag, value = await _read(session, 2, expected)
        try:
            if tag == _SEARCH_ENTRY:
                session.detail = _entry_detail(value)
                continue
            if tag == _SEARCH_DONE:
                code, message = _result(value)
                if code != 0 and session.detail is None:
                    session.detail = f"root DSE search: result {code} {message}".strip()
                break
        except ValueError:
            raise session.protocol_error(expected, value) from None
        raise session.protocol_error(expected, value)
    session.send(_message(3, ber.element(0x42, b"")))  # unbindRequest [APPLICATION 2]
