"""Whether the leaf certificate names the server, judged apart from whether its chain is trusted.

OpenSSL checks the host name inside chain verification and reports only the first problem, so
one failed handshake cannot say both "untrusted" and "wrong name"; under insecureSkipVerify it
says neither. The name is therefore checked here, on the leaf alone, with the rules OpenSSL
applies for Python's ssl (X509_check_host with X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, and
``hostname_checks_common_name``): tests hold the two to the same verdicts.
"""

from __future__ import annotations

import ipaddress
import warnings
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from .certificate import raw_dns_names
from .chain import CACHED_CERTIFICATES

# Names compared at most: a certificate may carry thousands of SANs, the check stays bounded.
_MAX_NAMES = 1024


@dataclass(frozen=True)
class HostnameVerdict:
    matches: bool | None  # None: the leaf could not be read
    reason: str | None  # why not (the message OpenSSL would give), or why unknown


def _wildcard_match(pattern: str, host: str) -> bool:
    """OpenSSL's rules: ``*`` only as the whole leftmost label, at least two labels after it,
    and it stands for exactly one non-empty label."""
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    host_first, dot, host_rest = host.partition(".")
    if not dot or not host_first:
        return False
    return host_rest == rest


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@lru_cache(maxsize=CACHED_CERTIFICATES)
def check_hostname(
    der: bytes, server_name: str, common_name_fallback: bool = True
) -> HostnameVerdict:
    """Whether the DER leaf is valid for ``server_name`` (a DNS name or an IP literal).

    Remembered per (certificate, name), as the certificate's reading is (see certificate.py).
    """
    mismatch = HostnameVerdict(
        False, f"Hostname mismatch, certificate is not valid for '{server_name}'."
    )
    if server_name.startswith("[") and server_name.endswith("]"):
        server_name = server_name[1:-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cert = x509.load_der_x509_certificate(der)
            common_names = [
                a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            ]
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a Rust panic in the parser is a BaseException
            return HostnameVerdict(None, f"the certificate's names do not parse: {exc}")
        try:
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                san = None
            dns_names = san.get_values_for_type(x509.DNSName) if san is not None else []
            ips = san.get_values_for_type(x509.IPAddress) if san is not None else []
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            # A name that is not IA5 (OpenSSL takes it, cryptography does not): compared as
            # the bytes it is, which never equal an ASCII server name, as in OpenSSL.
            try:
                raw = raw_dns_names(cert.tbs_certificate_bytes)
            except ValueError as exc:
                return HostnameVerdict(None, f"the certificate's names do not parse: {exc}")
            dns_names, ips = [name.decode("latin-1") for name in raw], []
    address = _ip(server_name)
    if address is not None:
        # An IP literal matches an iPAddress entry only, never a DNS name or the CN.
        return HostnameVerdict(True, None) if address in ips[:_MAX_NAMES] else mismatch
    host = server_name.lower()
    if dns_names:
        names = dns_names[:_MAX_NAMES]
    elif common_name_fallback:
        # OpenSSL looks at the CN only when there is no DNS name in the SAN at all.
        names = [cn for cn in common_names[:_MAX_NAMES] if isinstance(cn, str)]
    else:
        names = []
    if any(_wildcard_match(name.lower(), host) for name in names):
        return HostnameVerdict(True, None)
    return mismatch
