"""Certificates for the TLS tests, generated per session with trustme."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import trustme


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def other_ca() -> trustme.CA:
    return trustme.CA()


ServerContextFactory = Callable[..., ssl.SSLContext]


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ServerContextFactory:
    """Build a server SSLContext: which names, which validity, which CA, client auth."""

    def build(
        *names: str,
        issuer: trustme.CA | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        require_client_cert: bool = False,
        max_version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        leaf = (issuer or ca).issue_cert(
            *(names or ("localhost", "127.0.0.1")), not_before=not_before, not_after=not_after
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ca.configure_trust(ctx)
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx

    return build


def days_from_now(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)
