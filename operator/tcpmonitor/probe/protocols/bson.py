"""The little BSON a MongoDB ``hello`` needs: a flat document out, top-level scalars back.

Written by hand because one request and a few fields of the reply do not justify a driver.
Nested documents and arrays are skipped by their length, never parsed.
"""

from __future__ import annotations

import struct

BsonValue = str | int | float | bool | None


def encode(document: dict[str, str | int]) -> bytes:
    body = b""
    for key, value in document.items():
        name = key.encode() + b"\0"
        if isinstance(value, str):
            text = value.encode() + b"\0"
            body += b"\x02" + name + struct.pack("<i", len(text)) + text
        else:
            body += b"\x10" + name + struct.pack("<i", value)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


# Sizes of the fixed-width types; strings, documents and binaries carry their own length.
_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}


def decode_top_level(data: bytes) -> dict[str, BsonValue]:
    """The top-level scalar fields of the document ``data`` starts with; ValueError when it
    is not BSON. Fields of other types are present with the value None."""
    if len(data) < 5:
        raise ValueError("too short for a BSON document")
    size = struct.unpack("<i", data[:4])[0]
    if not 5 <= size <= len(data) or data[size - 1] != 0:
        raise ValueError("BSON document length does not fit")
    out: dict[str, BsonValue] = {}
    position = 4
    while position < size - 1:
        kind = data[position]
        name_end = data.index(b"\0", position + 1, size)
        name = data[position + 1 : name_end].decode("utf-8", "replace")
        position = name_end + 1
        value: BsonValue = None
        if kind in (0x02, 0x0D, 0x0E):  # string, JavaScript, symbol
            length = struct.unpack("<i", data[position : position + 4])[0]
            value = data[position + 4 : position + 3 + length].decode("utf-8", "replace")
            width = 4 + length
        elif kind in (0x03, 0x04):  # document, array
            width = struct.unpack("<i", data[position : position + 4])[0]
        elif kind == 0x05:  # binary: length, subtype, bytes
            width = 5 + struct.unpack("<i", data[position : position + 4])[0]
        elif kind in _FIXED:
            width = _FIXED[kind]
            raw = data[position : position + width]
            if kind == 0x01:
                value = struct.unpack("<d", raw)[0]
            elif kind == 0x08:
                value = raw != b"\0"
            elif kind == 0x10:
                value = struct.unpack("<i", raw)[0]
            elif kind == 0x12:
                value = struct.unpack("<q", raw)[0]
        else:
            raise ValueError(f"BSON type 0x{kind:02x} not understood")
        if width < 0 or position + width > size - 1:
            raise ValueError("BSON element overruns its document")
        out[name] = value
        position += width
    return out
