"""The server's Certificate message parsed without cryptography: in order, bounded, and any
bytes either parse or raise ValueError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpmonitor.api.result import MAX_CHAIN
from tcpmonitor.probe.handshake_capture import parse_certificate_message

TLS12, TLS13 = 0x0303, 0x0304


def _message(ders: list[bytes], version: int) -> bytes:
    entries = b""
    for der in ders:
        entries += len(der).to_bytes(3, "big") + der
        if version == TLS13:
            entries += b"\x00\x00"  # no extensions
    body = len(entries).to_bytes(3, "big") + entries
    if version == TLS13:
        body = b"\x00" + body  # empty request context
    return b"\x0b" + len(body).to_bytes(3, "big") + body


@pytest.mark.parametrize("version", [TLS12, TLS13])
def test_message_parses_in_order_and_counts_beyond_the_bound(version: int) -> None:
    ders = [bytes([i]) * (10 + i) for i in range(MAX_CHAIN + 3)]
    parsed, presented = parse_certificate_message(_message(ders, version), version)
    assert parsed == ders[:MAX_CHAIN]
    assert presented == MAX_CHAIN + 3


@pytest.mark.parametrize("version", [TLS12, TLS13])
def test_truncated_message_is_refused(version: int) -> None:
    message = _message([b"x" * 40, b"y" * 40], version)
    for cut in (3, 6, len(message) - 30):
        with pytest.raises(ValueError):
            parse_certificate_message(message[:cut], version)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([TLS12, TLS13]))
def test_any_bytes_parse_or_raise_value_error(data: bytes, version: int) -> None:
    try:
        ders, presented = parse_certificate_message(b"\x0b" + data, version)
    except ValueError:
        return
    assert len(ders) <= MAX_CHAIN and presented >= len(ders)
