"""XMPP (RFC 6120): open a client stream to the server's domain and read its stream features;
with STARTTLS, ``<starttls/>``, ``<proceed/>``, the handshake, and the features again.

The XML is searched, not parsed: only a few markers matter, and a parser on a stream from the
network is an attack surface (entity expansion) this check does not need.
"""

from __future__ import annotations

import re

from ..session import Framer, Session

_TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
_FROM = re.compile(rb"<(?:stream:)?stream\b[^>]*?\sfrom=['\"]([^'\"]{1,255})['\"]")
_FEATURES = re.compile(rb"<(?:stream:)?features\b")
_FEATURES_END = re.compile(rb"</(?:stream:)?features>|<(?:stream:)?features\s*/>")
_STREAM_ERROR = re.compile(rb"</(?:stream:)?error>|</(?:stream:)?stream>")
_FEATURE_NAMES = re.compile(rb"<([a-z][a-z0-9-]{0,31})\s[^>]*xmlns=")
_ERROR_CONDITION = re.compile(rb"<([a-z-]{1,64})\s+xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams")


def _features_framer(data: bytes) -> int | None:
    if data.strip() and not data.lstrip().startswith(b"<"):
        return len(data)  # not XML: hand it over whole, to be refused
    end = _FEATURES_END.search(data)
    if end is not None:
        return end.end()
    error = _STREAM_ERROR.search(data)
    return error.end() if error is not None else None


def _tls_answer_framer(data: bytes) -> int | None:
    found = re.search(rb"<proceed[^>]*>|<failure[^>]*>", data)
    if found is None:
        return None
    close = data.find(b"</failure>", found.end())
    return close + len(b"</failure>") if close >= 0 else found.end()


def _open(session: Session) -> None:
    domain = session.server_name.replace("'", "")
    session.send(
        b"<?xml version='1.0'?><stream:stream to='" + domain.encode("ascii", "replace") + b"' "
        b"version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )


async def _features(session: Session) -> bytes:
    expected = "XMPP stream features"
    framer: Framer = _features_framer
    raw = await session.read(framer, expected)
    if not raw.lstrip().startswith(b"<") or not _FEATURES.search(raw):
        condition = _ERROR_CONDITION.search(raw)
        if condition is not None:
            raise session.protocol_error(expected, b"stream error " + condition.group(1))
        raise session.protocol_error(expected, raw)
    return raw


# The regexes below may backtrack within a tag; what they search is cut to this, so a target
# sending a long run of unclosed tags costs little.
_DESCRIBED = 4096


def _describe(raw: bytes) -> str:
    origin = _FROM.search(raw[:_DESCRIBED])
    opening = _FEATURES.search(raw)
    features = raw[opening.start() : opening.start() + _DESCRIBED] if opening else b""
    names = [n.decode() for n in _FEATURE_NAMES.findall(features)]
    who = origin.group(1).decode("utf-8", "replace") if origin else "?"
    return f"stream from {who}, features: {', '.join(dict.fromkeys(names)) or 'none'}"


async def converse(session: Session, start_tls: bool) -> None:
    _open(session)
    raw = await _features(session)
    session.detail = _describe(raw)
    if start_tls:
        if _TLS_NS.encode() not in raw:
            raise session.starttls_refused("the XMPP server does not offer <starttls/>")
        session.send(f"<starttls xmlns='{_TLS_NS}'/>".encode())
        answer = await session.read(_tls_answer_framer, "<proceed/> or <failure/>")
        if not answer.startswith(b"<proceed"):
            raise session.starttls_refused("the XMPP server answered <failure/> to <starttls/>")
        await session.start_tls()
        # RFC 6120 section 5.4.3.3: a new stream over TLS, whose features prove XMPP there.
        _open(session)
        session.detail = _describe(await _features(session))
    session.send(b"</stream:stream>")
