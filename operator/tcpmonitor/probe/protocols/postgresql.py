"""PostgreSQL (frontend/backend protocol 3.0): a startup message answered by an
authentication request; with STARTTLS, SSLRequest answered by ``S`` first.

The startup names a user that need not exist: the server asks for a password ('R'), lets it
in ('R' 0, then its version in ParameterStatus) or refuses it ('E' with a message); each is
PostgreSQL answering. Nothing beyond the authentication request is sent.
"""

from __future__ import annotations

import struct

from ..session import Session

_SSL_REQUEST = struct.pack("!II", 8, 80877103)
_PROTOCOL_3 = 196608
_USER = b"tcpmonitor"
_AUTH_METHODS = {
    0: "trust",
    2: "Kerberos V5",
    3: "password",
    5: "MD5 password",
    7: "GSSAPI",
    9: "SSPI",
    10: "SASL",
}
# A backend message is a type byte and a length; an authentication request is short, an
# error at most a few KiB. Anything claiming more is not PostgreSQL answering a startup.
_MAX_MESSAGE = 16 * 1024
_TERMINATE = b"X" + struct.pack("!I", 4)


def _startup() -> bytes:
    body = struct.pack("!I", _PROTOCOL_3)
    for key, value in ((b"user", _USER), (b"database", _USER), (b"application_name", _USER)):
        body += key + b"\0" + value + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def _message_framer(data: bytes) -> int | None:
    if len(data) < 5:
        return None
    length = struct.unpack("!I", data[1:5])[0]
    if not 4 <= length <= _MAX_MESSAGE:
        return len(data)  # not a backend message: hand it over whole, to be refused
    return 1 + length if len(data) >= 1 + length else None


def _error_text(body: bytes) -> str:
    fields = {}
    for field in body.split(b"\0"):
        if field:
            fields[chr(field[0])] = field[1:].decode("utf-8", "replace")
    return f"{fields.get('S', 'ERROR')} {fields.get('C', '')}: {fields.get('M', '')}".strip()


async def converse(session: Session, start_tls: bool) -> None:
    if start_tls:
        session.send(_SSL_REQUEST)
        answer = await session.read(lambda d: 1 if d else None, "a PostgreSQL SSLRequest answer")
        if answer == b"N":
            raise session.starttls_refused("the PostgreSQL server does not accept SSL (N)")
        if answer != b"S":
            raise session.protocol_error("S or N in reply to a PostgreSQL SSLRequest", answer)
        await session.start_tls()
    session.send(_startup())
    expected = "a PostgreSQL authentication request (R) or error (E)"
    message = await session.read(_message_framer, expected)
    kind, body = message[:1], message[5:]
    if kind == b"E" and body[:1] in (b"S", b"V", b"C", b"M") and body.endswith(b"\0"):
        session.detail = _error_text(body)
        return
    if kind != b"R" or len(body) < 4:
        raise session.protocol_error(expected, message)
    method = struct.unpack("!I", body[:4])[0]
    session.detail = f"authentication request: {_AUTH_METHODS.get(method, str(method))}"
    if method == 0:
        # Let in without a password: the ParameterStatus messages that follow name the
        # server version; read a few, then leave politely.
        for _ in range(32):
            parameter = await session.read(_message_framer, "PostgreSQL parameters")
            if parameter[:1] == b"S" and parameter[5:].startswith(b"server_version\0"):
                version = parameter[5:].split(b"\0")[1].decode("latin-1")
                session.detail = f"PostgreSQL {version} (trust authentication)"
                break
            if parameter[:1] in (b"Z", b"E"):
                break
        session.send(_TERMINATE)
