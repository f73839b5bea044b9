"""The little BER (X.690) LDAP needs: a few requests out, definite-length elements back.

By hand, because a RootDSE search and a StartTLS request are a few dozen bytes; the reader
refuses what LDAP never sends (indefinite lengths, multi-byte tags, lengths over 4 bytes).
"""

from __future__ import annotations

from collections.abc import Iterator

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
ENUMERATED = 0x0A
BOOLEAN = 0x01


def element(tag: int, value: bytes) -> bytes:
    size = len(value)
    if size < 0x80:
        return bytes([tag, size]) + value
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def integer(value: int, tag: int = INTEGER) -> bytes:
    return element(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def header(data: bytes, position: int = 0) -> tuple[int, int, int] | None:
    """(tag, start of value, length) of the element at ``position``; None when more bytes
    are needed; ValueError when it is not BER that LDAP sends."""
    if len(data) < position + 2:
        return None
    tag, first = data[position], data[position + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tag")
    if first < 0x80:
        return tag, position + 2, first
    size = first & 0x7F
    if not 0 < size <= 4:
        raise ValueError("indefinite or over-long length")
    if len(data) < position + 2 + size:
        return None
    length = int.from_bytes(data[position + 2 : position + 2 + size], "big")
    return tag, position + 2 + size, length


def children(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (tag, value) elements that make up ``data``; ValueError when one is cut."""
    position = 0
    while position < len(data):
        found = header(data, position)
        if found is None:
            raise ValueError("truncated element")
        tag, start, length = found
        if start + length > len(data):
            raise ValueError("truncated element")
        yield tag, data[start : start + length]
        position = start + length
