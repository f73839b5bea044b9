"""A certificate is read once and remembered: what depends on the time still follows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trustme

from tcpmonitor.probe.certificate import inspect_certificate
from tcpmonitor.probe.chain import CACHED_CERTIFICATES, inspect_chain_entry
from tcpmonitor.probe.hostname import check_hostname


def _leaf_der() -> bytes:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    pem = trustme.CA().issue_cert("cache.test").cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_a_remembered_certificate_counts_its_days_remaining_from_each_probe() -> None:
    der = _leaf_der()
    now = datetime.now(UTC)
    first = inspect_certificate(der, now).certificate
    later = inspect_certificate(bytes(der), now + timedelta(days=10)).certificate
    assert first is not None and later is not None
    assert first.days_remaining is not None and later.days_remaining is not None
    assert round(first.days_remaining - later.days_remaining, 3) == 10
    assert first.model_dump(exclude={"days_remaining"}) == later.model_dump(
        exclude={"days_remaining"}
    )
    # Each result owns its lists: a caller changing one does not change the next probe's.
    first.dns_names.append("changed.test")
    again = inspect_certificate(der, now).certificate
    assert again is not None and again.dns_names == ["cache.test"]


def test_remembered_verdicts_are_those_of_a_fresh_reading() -> None:
    der = _leaf_der()
    inspect_chain_entry.cache_clear()
    check_hostname.cache_clear()
    fresh = (inspect_chain_entry(der), check_hostname(der, "cache.test"))
    wrong = check_hostname(der, "other.test")
    assert (inspect_chain_entry(bytes(der)), check_hostname(bytes(der), "cache.test")) == fresh
    assert fresh[1].matches is True and wrong.matches is False
    assert inspect_chain_entry.cache_info().hits == 1
    assert inspect_chain_entry.cache_info().maxsize == CACHED_CERTIFICATES
