"""MongoDB (wire protocol, OP_MSG): ``hello``, answered without authentication by every
server since 4.4 (and FerretDB); then ``buildInfo`` for the version, best effort."""

from __future__ import annotations

import itertools
import struct

from ..session import Session
from .bson import BsonValue, decode_top_level, encode

_OP_MSG = 2013
# A hello reply is under 1 KiB and buildInfo's a few; the read cap bounds the rest.
_MAX_REPLY = 48 * 1024
_request_ids = itertools.count(1)


def _op_msg(request_id: int, command: dict[str, str | int]) -> bytes:
    body = struct.pack("<I", 0) + b"\0" + encode(command)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, _OP_MSG) + body


def _message_framer(data: bytes) -> int | None:
    if len(data) < 4:
        return None
    length = struct.unpack("<i", data[:4])[0]
    if not 16 <= length <= _MAX_REPLY:
        return len(data)  # not a MongoDB message: hand it over whole, to be refused
    return length if len(data) >= length else None


async def _command(session: Session, command: dict[str, str | int]) -> dict[str, BsonValue]:
    name = next(iter(command))
    expected = f"a MongoDB OP_MSG reply to {name}"
    request_id = next(_request_ids) & 0x7FFFFFFF
    session.send(_op_msg(request_id, command))
    reply = await session.read(_message_framer, expected)
    if len(reply) < 21:
        raise session.protocol_error(expected, reply)
    _, _, response_to, opcode = struct.unpack("<iiii", reply[:16])
    if opcode != _OP_MSG or response_to != request_id or reply[20] != 0:
        raise session.protocol_error(expected, reply)
    try:
        return decode_top_level(reply[21:])
    except (ValueError, struct.error):
        raise session.protocol_error(expected + " (BSON)", reply) from None


async def converse(session: Session, start_tls: bool) -> None:
    del start_tls  # MongoDB has TLS only from the first byte; validation refuses startTLS
    hello = await _command(session, {"hello": 1, "$db": "admin"})
    if hello.get("ok") not in (1, 1.0, True):
        raise session.protocol_error(
            "ok: 1 in reply to hello", str(hello.get("errmsg", hello)).encode()
        )
    session.detail = f"maxWireVersion {hello.get('maxWireVersion')}"
    info = await _command(session, {"buildInfo": 1, "$db": "admin"})
    version = info.get("version")
    if isinstance(version, str):
        session.detail = f"version {version}, {session.detail}"
