"""The remembered chain verdicts: bounded, aged, never past the chain's expiry, per context."""

from __future__ import annotations

import ssl

from tcpmonitor.probe.trust_cache import TrustCache, TrustVerdict

UNTRUSTED = TrustVerdict(False, "self-signed certificate")


def test_a_verdict_is_kept_until_its_age_or_the_chain_expiry() -> None:
    cache = TrustCache(max_age=100.0)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cache.put(context, ("AA",), UNTRUSTED, now=1000.0, expires=None)
    assert cache.get(context, ("AA",), now=1099.0) == UNTRUSTED
    assert cache.get(context, ("AA",), now=1100.0) is None
    cache.put(context, ("BB",), UNTRUSTED, now=1000.0, expires=1010.0)
    assert cache.get(context, ("BB",), now=1009.0) == UNTRUSTED
    assert cache.get(context, ("BB",), now=1010.0) is None


def test_another_chain_or_trust_store_is_not_answered() -> None:
    cache = TrustCache()
    one, other = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cache.put(one, ("AA", "BB"), UNTRUSTED, now=0.0, expires=None)
    assert cache.get(one, ("AA",), now=1.0) is None
    assert cache.get(other, ("AA", "BB"), now=1.0) is None


def test_entries_are_bounded_least_recently_used_first() -> None:
    cache = TrustCache(max_entries=3)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for name in ("A", "B", "C"):
        cache.put(context, (name,), UNTRUSTED, now=0.0, expires=None)
    assert cache.get(context, ("A",), now=1.0) == UNTRUSTED  # A is now the most recent
    cache.put(context, ("D",), UNTRUSTED, now=0.0, expires=None)
    assert len(cache) == 3
    assert cache.get(context, ("B",), now=1.0) is None
    assert cache.get(context, ("A",), now=1.0) == UNTRUSTED
