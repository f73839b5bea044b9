"""The host name verdict, held to OpenSSL's: the same certificate and name, judged by a real
OpenSSL handshake (check_hostname, in memory) and by probe/hostname.py, agree."""

from __future__ import annotations

import ipaddress
import ssl

import pytest
from cryptography import x509

from tcpmonitor.probe.hostname import check_hostname

from .chains import Issued, issue, server_context

D, IP = x509.DNSName, x509.IPAddress


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Hostname Root")


def openssl_accepts(root: Issued, leaf: Issued, server_name: str) -> bool:
    """A handshake over memory BIOs with Python's default host name checking."""
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=root.pem.decode())
    server_ctx = server_context(leaf)
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(pipes[0], pipes[1], server_hostname=server_name)
    server = server_ctx.wrap_bio(pipes[2], pipes[3], server_side=True)
    for _ in range(20):  # a handshake is a few round trips; bounded all the same
        for side, out_bio, in_bio in ((client, pipes[1], pipes[2]), (server, pipes[3], pipes[0])):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError as exc:
                assert exc.verify_code in (62, 64), exc  # only the name may be wrong here
                return False
            except ssl.SSLError:
                pass  # the server, once the client gave up
            in_bio.write(out_bio.read())
        if client.version() is not None and server.version() is not None:
            return True
    raise AssertionError("handshake did not finish")


CASES: list[tuple[list[x509.GeneralName] | None, str, str]] = [
    ([D("db.example.com")], "db.example.com", "exact"),
    ([D("DB.Example.COM")], "db.example.com", "case"),
    ([D("*.example.com")], "a.example.com", "wildcard"),
    ([D("*.example.com")], "a.b.example.com", "wildcard is one label"),
    ([D("*.example.com")], "example.com", "wildcard needs a label"),
    ([D("*.com")], "example.com", "wildcard too wide"),
    ([D("f*.example.com")], "foo.example.com", "partial wildcard"),
    ([D("a.*.example.com")], "a.b.example.com", "wildcard not leftmost"),
    ([D("*.example.com")], "xn--bcher-kva.example.com", "idna under a whole wildcard"),
    ([D("other.example"), D("db.example.com")], "db.example.com", "second name"),
    ([IP(ipaddress.ip_address("127.0.0.1"))], "127.0.0.1", "ip"),
    ([D("127.0.0.1")], "127.0.0.1", "ip as dns name"),
    ([IP(ipaddress.ip_address("::1"))], "::1", "ipv6"),
    ([], "legacy.example", "common name only"),
    ([D("other.example")], "legacy.example", "common name ignored beside a SAN"),
    ([IP(ipaddress.ip_address("10.0.0.1"))], "legacy.example", "CN beside IP-only SAN"),
]


@pytest.mark.parametrize(("san", "server_name", "case"), CASES, ids=[c[2] for c in CASES])
def test_verdict_agrees_with_openssl(
    root: Issued, san: list[x509.GeneralName] | None, server_name: str, case: str
) -> None:
    leaf = root.issue("legacy.example", san=san)
    expected = openssl_accepts(root, leaf, server_name)
    verdict = check_hostname(leaf.der, server_name)
    assert verdict.matches is expected, case
    if not expected:
        assert verdict.reason == (
            f"Hostname mismatch, certificate is not valid for '{server_name}'."
        )


def test_agreement_is_not_vacuous(root: Issued) -> None:
    # Both outcomes occur among the cases, or the comparison above could pass by accident.
    outcomes = {
        openssl_accepts(root, root.issue("legacy.example", san=san), name) for san, name, _ in CASES
    }
    assert outcomes == {True, False}


def test_unparseable_certificate_has_no_verdict() -> None:
    verdict = check_hostname(b"\x30\x03\x02\x01\x01", "example.com")
    assert verdict.matches is None and verdict.reason
