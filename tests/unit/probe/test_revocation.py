"""Revocation: the OCSP response stapled in the handshake (TLS 1.2 and 1.3, after STARTTLS too),
judged for whose it is, who signed it and whether it is current; and, when asked, the CA's
responder (``openssl ocsp``) queried over HTTP, its answer cached."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from tcpmonitor.api import ErrorCode, ProbeResult, Protocol, Verdict, WarningCode
from tcpmonitor.api.result import RevocationSource, RevocationStatus
from tcpmonitor.policy import PolicyBook
from tcpmonitor.probe import ProbeMaterial, stapling
from tcpmonitor.probe.handshake_capture import (
    MAX_STAPLE,
    leaf_status_extension,
    parse_certificate_status,
)
from tcpmonitor.probe.ocsp_responder import RESPONDER_CACHE, ResponderCache, ask_responder
from tcpmonitor.probe.tls import build_contexts

from ..probing import probe
from ..servers import serve
from . import protocol_servers
from .chains import Issued, issue, server_context
from .ocsp_servers import (
    index_line,
    ocsp_responder,
    ocsp_response,
    staple_from,
    stapling_server,
)

GOOD, REVOKED, UNKNOWN = (
    ocsp.OCSPCertStatus.GOOD,
    ocsp.OCSPCertStatus.REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN,
)
VERSIONS = ["tls1_2", "tls1_3"]


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("OCSP Root")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return root.issue("OCSP Intermediate", ca=True)


@pytest.fixture(scope="module")
def leaf(intermediate: Issued) -> Issued:
    return intermediate.issue("leaf")


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    RESPONDER_CACHE.clear()
    yield
    RESPONDER_CACHE.clear()


def stapled(
    root: Issued,
    leaf: Issued,
    chain: list[Issued],
    staple: bytes | None,
    version: str = "tls1_3",
    **tls: Any,
) -> ProbeResult:
    async def scenario() -> ProbeResult:
        with stapling_server(leaf, chain, staple, version) as port:
            return await probe(
                port,
                ProbeMaterial(ca_pem=root.pem.decode()),
                tls={"enabled": True, "serverName": "localhost", **tls},
            )

    return asyncio.run(scenario())


# --- stapled -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_good_staple_is_up_with_its_dates(
    root: Issued, intermediate: Issued, leaf: Issued, version: str
) -> None:
    result = stapled(root, leaf, [intermediate], ocsp_response(leaf, intermediate), version)
    assert result.state is Verdict.UP, (result.error, result.warnings)
    revocation = result.tls.revocation if result.tls else None
    assert revocation is not None
    assert (revocation.status, revocation.source) == (
        RevocationStatus.GOOD,
        RevocationSource.STAPLE,
    )
    assert revocation.this_update is not None and revocation.next_update is not None
    assert revocation.this_update < revocation.next_update


@pytest.mark.parametrize("version", VERSIONS)
def test_revoked_staple_is_down_without_any_revocation_setting(
    root: Issued, intermediate: Issued, leaf: Issued, version: str
) -> None:
    response = ocsp_response(leaf, intermediate, REVOKED, reason=x509.ReasonFlags.key_compromise)
    result = stapled(root, leaf, [intermediate], response, version)
    assert result.error is not None and result.error.code == ErrorCode.TLS_CERTIFICATE_REVOKED
    assert "keyCompromise" in result.error.message
    revocation = result.tls.revocation if result.tls else None
    assert revocation is not None and revocation.status is RevocationStatus.REVOKED
    assert revocation.reason == "keyCompromise" and revocation.revoked_at is not None


@pytest.mark.parametrize("version", VERSIONS)
def test_no_staple_is_none_and_down_only_when_required(
    root: Issued, intermediate: Issued, leaf: Issued, version: str
) -> None:
    plain = stapled(root, leaf, [intermediate], None, version)
    assert plain.state is Verdict.UP, plain.error
    assert plain.tls is not None and plain.tls.revocation is not None
    assert plain.tls.revocation.status is RevocationStatus.NONE
    required = stapled(
        root, leaf, [intermediate], None, version, revocation={"requireStaple": True}
    )
    assert required.error is not None
    assert required.error.code == ErrorCode.TLS_OCSP_STAPLE_MISSING


def test_required_staple_that_is_present_is_up(
    root: Issued, intermediate: Issued, leaf: Issued
) -> None:
    result = stapled(
        root,
        leaf,
        [intermediate],
        ocsp_response(leaf, intermediate),
        revocation={"requireStaple": True},
    )
    assert result.state is Verdict.UP, result.error


def test_unknown_staple_degrades(root: Issued, intermediate: Issued, leaf: Issued) -> None:
    result = stapled(root, leaf, [intermediate], ocsp_response(leaf, intermediate, UNKNOWN))
    assert result.state is Verdict.DEGRADED, result.error
    assert [w.code for w in result.warnings] == [WarningCode.TLS_REVOCATION_UNKNOWN]
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.status is RevocationStatus.UNKNOWN


def _invalid_cases(
    root: Issued, intermediate: Issued, leaf: Issued
) -> dict[str, tuple[bytes, str]]:
    other_leaf = intermediate.issue("another site")
    stranger = issue("Stranger CA")
    no_usage = intermediate.issue("not a responder")
    return {
        "another certificate's": (
            ocsp_response(other_leaf, intermediate),
            "not for this certificate",
        ),
        "signed by a stranger": (
            ocsp_response(leaf, intermediate, signer=stranger),
            "a responder certificate its issuer did not issue",
        ),
        "tampered": (
            # The last byte is the signature's: the issuer's key no longer verifies it.
            (good := ocsp_response(leaf, intermediate))[:-1] + bytes([good[-1] ^ 1]),
            "not the issuer's nor a delegated responder's",
        ),
        "delegate without OCSPSigning": (
            ocsp_response(leaf, intermediate, signer=no_usage),
            "without the OCSPSigning key usage",
        ),
        "expired": (
            ocsp_response(
                leaf, intermediate, this_update=timedelta(days=-3), next_update=timedelta(days=-1)
            ),
            "expired (nextUpdate",
        ),
        "from the future": (
            ocsp_response(leaf, intermediate, this_update=timedelta(hours=2)),
            "dated in the future",
        ),
        "a revoked response that cannot be believed": (
            ocsp_response(other_leaf, intermediate, REVOKED),
            "not for this certificate",
        ),
        "garbage": (b"\x30\x03\x0a\x01\x00", "does not parse"),
    }


INVALID = [
    "another certificate's",
    "signed by a stranger",
    "tampered",
    "delegate without OCSPSigning",
    "expired",
    "from the future",
    "a revoked response that cannot be believed",
    "garbage",
]


@pytest.mark.parametrize("case", INVALID)
def test_staple_that_cannot_be_believed_is_invalid_and_degrades(
    root: Issued, intermediate: Issued, leaf: Issued, case: str
) -> None:
    response, why = _invalid_cases(root, intermediate, leaf)[case]
    result = stapled(root, leaf, [intermediate], response, "tls1_2")
    assert result.state is Verdict.DEGRADED, result.error
    assert [w.code for w in result.warnings] == [WarningCode.TLS_OCSP_RESPONSE_INVALID]
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.status is RevocationStatus.INVALID
    assert why in (result.tls.revocation.message or "")


def test_delegated_responder_signature_is_accepted(
    root: Issued, intermediate: Issued, leaf: Issued
) -> None:
    delegate = intermediate.issue(
        "OCSP Responder", extended_key_usage=[ExtendedKeyUsageOID.OCSP_SIGNING]
    )
    response = ocsp_response(leaf, intermediate, REVOKED, signer=delegate)
    result = stapled(root, leaf, [intermediate], response, "tls1_3")
    assert result.error is not None and result.error.code == ErrorCode.TLS_CERTIFICATE_REVOKED


def test_staple_without_the_issuer_in_the_chain_is_not_checked(
    root: Issued, intermediate: Issued, leaf: Issued
) -> None:
    # The server leaves its intermediate out: the chain does not verify either, so trust is
    # skipped to see that the staple is reported as not checked rather than judged.
    async def scenario() -> ProbeResult:
        with stapling_server(leaf, [], ocsp_response(leaf, intermediate, REVOKED)) as port:
            return await probe(
                port, tls={"enabled": True, "serverName": "localhost", "insecureSkipVerify": True}
            )

    result = asyncio.run(scenario())
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.status is RevocationStatus.NOT_CHECKED
    assert "issuer is not in the presented chain" in (result.tls.revocation.message or "")


def test_staple_after_starttls(root: Issued, intermediate: Issued, leaf: Issued) -> None:
    mail = intermediate.issue("mail", dns_names=("example.com",))
    context = staple_from(
        server_context(mail, intermediate), ocsp_response(mail, intermediate, REVOKED)
    )
    tls = {"enabled": True, "startTLS": True, "serverName": "example.com"}

    async def scenario() -> ProbeResult:
        async with serve(protocol_servers.smtp(context)) as port:
            return await probe(
                port, ProbeMaterial(ca_pem=root.pem.decode()), protocol=Protocol.SMTP, tls=tls
            )

    result = asyncio.run(scenario())
    assert result.error is not None and result.error.code == ErrorCode.TLS_CERTIFICATE_REVOKED
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.source == RevocationSource.STAPLE


# --- the responder -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "revoked", "status"),
    [
        (True, False, RevocationStatus.GOOD),
        (True, True, RevocationStatus.REVOKED),
        (False, False, RevocationStatus.UNKNOWN),
    ],
)
def test_responder_is_asked_when_nothing_is_stapled(
    root: Issued, intermediate: Issued, listed: bool, revoked: bool, status: RevocationStatus
) -> None:
    serial = x509.random_serial_number()
    lines = [index_line(serial, "leaf", revoked)] if listed else []
    with ocsp_responder(intermediate, lines) as port:
        leaf = intermediate.issue("leaf", ocsp_url=f"http://127.0.0.1:{port}/ocsp", serial=serial)
        result = stapled(root, leaf, [intermediate], None, revocation={"queryResponder": True})
    assert result.tls is not None and result.tls.revocation is not None
    revocation = result.tls.revocation
    assert (revocation.status, revocation.source) == (status, RevocationSource.RESPONDER)
    if status is RevocationStatus.REVOKED:
        assert result.error is not None
        assert result.error.code == ErrorCode.TLS_CERTIFICATE_REVOKED
        assert revocation.reason == "keyCompromise"
    elif status is RevocationStatus.UNKNOWN:
        assert [w.code for w in result.warnings] == [WarningCode.TLS_REVOCATION_UNKNOWN]
    else:
        assert result.state is Verdict.UP, (result.error, result.warnings)
        assert revocation.next_update is not None  # -nmin 30: the cache keeps it that long


def test_responder_answer_is_cached_and_a_failure_is_reported(
    root: Issued, intermediate: Issued
) -> None:
    serial = x509.random_serial_number()
    # The responder answers one request, then exits: a second request would be refused.
    with ocsp_responder(intermediate, [index_line(serial, "leaf")], requests=1) as port:
        leaf = intermediate.issue("leaf", ocsp_url=f"http://127.0.0.1:{port}/", serial=serial)
        first = stapled(root, leaf, [intermediate], None, revocation={"queryResponder": True})
        second = stapled(root, leaf, [intermediate], None, revocation={"queryResponder": True})
    for result in (first, second):
        assert result.state is Verdict.UP, (result.error, result.warnings)
        assert result.tls is not None and result.tls.revocation is not None
        assert result.tls.revocation.status is RevocationStatus.GOOD
    RESPONDER_CACHE.clear()
    gone = stapled(root, leaf, [intermediate], None, revocation={"queryResponder": True})
    assert gone.state is Verdict.DEGRADED, gone.error
    assert [w.code for w in gone.warnings] == [WarningCode.TLS_OCSP_RESPONDER_FAILED]
    assert gone.tls is not None and gone.tls.revocation is not None
    assert gone.tls.revocation.status is RevocationStatus.NOT_CHECKED


def test_the_responder_is_a_target_the_policy_must_allow(
    root: Issued, intermediate: Issued
) -> None:
    """Its address comes from the certificate: the monitor's target policy applies to it."""
    serial = x509.random_serial_number()
    with ocsp_responder(intermediate, [index_line(serial, "leaf")], requests=1) as port:
        leaf = intermediate.issue("leaf", ocsp_url=f"http://127.0.0.1:{port}/", serial=serial)
        leaf_cert, issuer_cert = leaf.cert, intermediate.cert
        guard = PolicyBook().guard("team")  # the built-in refusal of loopback
        refused = asyncio.run(
            ask_responder(leaf_cert, issuer_cert, 3.0, cache=ResponderCache(), guard=guard)
        )
        # The responder answers one request: still there, so the refusal sent it nothing.
        allowed = asyncio.run(ask_responder(leaf_cert, issuer_cert, 3.0, cache=ResponderCache()))
    assert refused.status is RevocationStatus.NOT_CHECKED
    assert refused.message is not None and "refused by builtin/loopback" in refused.message
    assert allowed.status is RevocationStatus.GOOD


def test_staple_is_preferred_to_the_responder(
    root: Issued, intermediate: Issued, leaf: Issued
) -> None:
    # The leaf names no responder at all: only the staple can have been used.
    result = stapled(
        root,
        leaf,
        [intermediate],
        ocsp_response(leaf, intermediate),
        revocation={"queryResponder": True},
    )
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.source == RevocationSource.STAPLE


def test_without_a_responder_url_nothing_is_asked(
    root: Issued, intermediate: Issued, leaf: Issued
) -> None:
    result = stapled(root, leaf, [intermediate], None, revocation={"queryResponder": True})
    assert result.state is Verdict.UP, (result.error, result.warnings)
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.status is RevocationStatus.NOT_CHECKED
    assert result.tls.revocation.message == "the leaf names no OCSP responder"


def test_responder_named_by_an_unverified_certificate_is_not_asked(
    intermediate: Issued,
) -> None:
    serial = x509.random_serial_number()
    # Would answer revoked if asked: the probe must not ask it.
    with ocsp_responder(intermediate, [index_line(serial, "leaf", revoked=True)]) as port:
        leaf = intermediate.issue("leaf", ocsp_url=f"http://127.0.0.1:{port}/", serial=serial)

        async def scenario() -> ProbeResult:
            with stapling_server(leaf, [intermediate], None) as server:
                return await probe(
                    server,
                    tls={
                        "enabled": True,
                        "serverName": "localhost",
                        "insecureSkipVerify": True,
                        "revocation": {"queryResponder": True},
                    },
                )

        result = asyncio.run(scenario())
    assert result.state is Verdict.UP, (result.error, result.warnings)
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.status is RevocationStatus.NOT_CHECKED
    assert "insecureSkipVerify" in (result.tls.revocation.message or "")


# --- the wire formats --------------------------------------------------------------------------


def test_certificate_status_is_bounded_and_checked() -> None:
    der = b"\x30\x03\x0a\x01\x00"
    assert parse_certificate_status(b"\x01" + len(der).to_bytes(3, "big") + der) == der
    big = b"\x30" * (MAX_STAPLE + 1)
    with pytest.raises(ValueError):  # over the bound: reported as a staple that does not parse
        parse_certificate_status(b"\x01" + len(big).to_bytes(3, "big") + big)
    for bad in (b"", b"\x02\x00\x00\x01\x00", b"\x01\x00\x00\x09\x00", b"\x01\x01\x00\x00"):
        with pytest.raises(ValueError):
            parse_certificate_status(bad)


def test_tls13_status_extension_is_found_in_the_leaf_entry() -> None:
    status = b"\x01\x00\x00\x02\x30\x00"
    extensions = b"\x00\x0a\x00\x00" + b"\x00\x05" + len(status).to_bytes(2, "big") + status
    entry = (3).to_bytes(3, "big") + b"abc" + len(extensions).to_bytes(2, "big") + extensions
    body = b"\x00" + len(entry).to_bytes(3, "big") + entry
    message = b"\x0b" + len(body).to_bytes(3, "big") + body
    assert leaf_status_extension(message) == status
    with pytest.raises(ValueError):
        leaf_status_extension(message[:-3])


def test_stapling_is_requested_on_this_python() -> None:
    # The ctypes path is what every other test here relies on: if it ever turns itself off
    # (another CPython layout), this says so plainly instead of a dozen revocation failures.
    assert stapling.request_stapling(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)) is None


def test_a_pointer_that_does_not_answer_as_its_context_is_refused() -> None:
    # Two real SSL_CTX: the check must tell them apart by their options alone.
    _, get_options = stapling._load()
    first = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    second = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    second.options |= ssl.OP_NO_TICKET
    pointer = stapling._pointer(first)
    assert pointer is not None
    assert stapling._proven(first, pointer, get_options)
    assert not stapling._proven(second, pointer, get_options)
    assert ssl.OP_NO_TICKET & second.options and not ssl.OP_NO_TICKET & first.options


def test_where_stapling_cannot_be_requested_revocation_is_not_checked(
    root: Issued, intermediate: Issued, leaf: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_contexts.cache_clear()  # contexts made before asked for stapling already
    monkeypatch.setattr(stapling._State, "disabled", stapling.UNSUPPORTED)
    try:
        result = stapled(root, leaf, [intermediate], ocsp_response(leaf, intermediate, REVOKED))
    finally:
        build_contexts.cache_clear()
    assert result.state is Verdict.UP, result.error
    assert result.tls is not None and result.tls.revocation is not None
    assert result.tls.revocation.status is RevocationStatus.NOT_CHECKED
    assert result.tls.revocation.message == stapling.UNSUPPORTED
