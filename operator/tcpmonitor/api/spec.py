"""The ``TcpMonitor`` spec: what users write, and the single source of truth for the CRD schema.

Every field carries a description (it becomes ``kubectl explain``), bounds on strings and lists
(the API server refuses unbounded CEL cost), and defaults the API server applies on create.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator

from .durations import (
    DURATION_MAX_LENGTH,
    DURATION_PATTERN,
    cel_milliseconds,
    parse_duration,
)
from .maintenance import MaintenanceSpec
from .regex import regex_syntax_error
from .rules import ApiModel, CrossFieldRule, Violation

DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"{DNS_LABEL}(\.{DNS_LABEL})*\.?"
# Only the alphabet of IPv6 literals; whether it is a real address is a CEL isIP() rule, because
# a pattern that accepts exactly the valid IPv6 forms is unreadable.
IPV6_CHARS_PATTERN = r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"
HOST_PATTERN = rf"^({HOSTNAME_PATTERN}|{IPV6_CHARS_PATTERN})$"
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
BASE64_PATTERN = r"^[A-Za-z0-9+/=\s]*$"

MAX_SEND_TEXT = 4096
MAX_SEND_BASE64 = 8192
MAX_ASSERTIONS = 16
MAX_ASSERTION_TARGET = 1024
MAX_STEPS = 16
MAX_STEP_EXPECT = 1024

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=OBJECT_NAME_PATTERN)]
LOCATION_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
LocationName = Annotated[
    str, Field(min_length=1, max_length=63, pattern=LOCATION_PATTERN, description="A location.")
]
MAX_LOCATIONS = 16
# The floor of what a tenant may ask for. An interval of 0 divided the scheduler by zero and 1ms
# meant hundreds of connections a second from one object; a platform raises the interval floor
# with --min-interval. A timeout under 10ms cannot cover a real TCP connect plus a reply outside
# one host (and 0 would fail every probe), while 10ms still allows in-cluster latency checks.
MIN_INTERVAL_SECONDS = 1.0
MIN_TIMEOUT_SECONDS = 0.01
_EPSILON = 1e-9
DataKey = Annotated[str, Field(min_length=1, max_length=253, pattern=DATA_KEY_PATTERN)]


class IpFamily(StrEnum):
    ANY = "Any"
    IPV4 = "IPv4"
    IPV6 = "IPv6"


class TlsVersion(StrEnum):
    TLS1_0 = "TLS1.0"
    TLS1_1 = "TLS1.1"
    TLS1_2 = "TLS1.2"
    TLS1_3 = "TLS1.3"


class Protocol(StrEnum):
    """The application protocols the probe speaks; the values are API (spec.protocol)."""

    SMTP = "SMTP"
    IMAP = "IMAP"
    POP3 = "POP3"
    FTP = "FTP"
    SSH = "SSH"
    POSTGRESQL = "PostgreSQL"
    MYSQL = "MySQL"
    REDIS = "Redis"
    MEMCACHED = "Memcached"
    MONGODB = "MongoDB"
    LDAP = "LDAP"
    XMPP = "XMPP"


# Those with an in-protocol upgrade: SSH has its own transport security, and Redis, Memcached
# and MongoDB offer TLS only on a port of its own (implicit TLS).
STARTTLS_PROTOCOLS = frozenset(
    {
        Protocol.SMTP,
        Protocol.IMAP,
        Protocol.POP3,
        Protocol.FTP,
        Protocol.POSTGRESQL,
        Protocol.MYSQL,
        Protocol.LDAP,
        Protocol.XMPP,
    }
)
_STARTTLS_CEL = "[" + ", ".join(f"'{p.value}'" for p in sorted(STARTTLS_PROTOCOLS)) + "]"


class Reachability(StrEnum):
    """What a monitor expects of its target (spec.expect)."""

    REACHABLE = "Reachable"
    UNREACHABLE = "Unreachable"


class AssertionSource(StrEnum):
    RESPONSE_DATA = "ResponseData"
    RESPONSE_TIME = "ResponseTime"


class Comparison(StrEnum):
    EQUALS = "Equals"
    NOT_EQUALS = "NotEquals"
    CONTAINS = "Contains"
    NOT_CONTAINS = "NotContains"
    MATCHES = "Matches"
    NOT_MATCHES = "NotMatches"
    IS_EMPTY = "IsEmpty"
    NOT_EMPTY = "NotEmpty"
    LESS_THAN = "LessThan"
    GREATER_THAN = "GreaterThan"


TARGETLESS_COMPARISONS = frozenset({Comparison.IS_EMPTY, Comparison.NOT_EMPTY})
TIME_COMPARISONS = frozenset({Comparison.LESS_THAN, Comparison.GREATER_THAN})
REGEX_COMPARISONS = frozenset({Comparison.MATCHES, Comparison.NOT_MATCHES})


class SecretKeyRef(ApiModel):
    """A key of a Secret in the monitor's own namespace."""

    name: ObjectName = Field(description="Name of the Secret, in the monitor's namespace.")
    key: DataKey = Field(description="Key inside the Secret's data.")


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the monitor's own namespace."""

    name: ObjectName = Field(description="Name of the ConfigMap, in the monitor's namespace.")
    key: DataKey = Field(description="Key inside the ConfigMap's data.")


class SecretRef(ApiModel):
    """A whole Secret in the monitor's own namespace."""

    name: ObjectName = Field(description="Name of the Secret, in the monitor's namespace.")


class SendFrom(ApiModel):
    """Where to read a payload that must not live in the manifest."""

    secret_key_ref: SecretKeyRef = Field(
        description="Secret key whose bytes are sent as they are, byte for byte."
    )


def _assertion_target_required(a: Assertion) -> str | None:
    if a.comparison in TARGETLESS_COMPARISONS or a.target is not None:
        return None
    return f"target is required for comparison {a.comparison.value}"


def _time_comparisons_match_source(a: Assertion) -> str | None:
    is_time = a.source is AssertionSource.RESPONSE_TIME
    if is_time == (a.comparison in TIME_COMPARISONS):
        return None
    if is_time:
        return "ResponseTime assertions compare with LessThan or GreaterThan"
    return f"{a.comparison.value} applies to ResponseTime only"


def _time_target_is_duration(a: Assertion) -> str | None:
    if a.source is not AssertionSource.RESPONSE_TIME or a.target is None:
        return None
    try:
        parse_duration(a.target)
    except ValueError:
        return f"ResponseTime target must be a duration such as 500ms, not {a.target}"
    return None


_DATA_COMPARISONS_CEL = "['LessThan', 'GreaterThan']"


class Assertion(ApiModel):
    """One check on the reply, evaluated after every probe (all must pass)."""

    source: AssertionSource = Field(
        description="What is checked: ResponseData (the bytes read, decoded as UTF-8) or "
        "ResponseTime (the total probe time)."
    )
    comparison: Comparison = Field(
        description="How source is compared with target. ResponseData: Equals, NotEquals, "
        "Contains, NotContains, Matches, NotMatches (regular expression search), IsEmpty, "
        "NotEmpty. ResponseTime: LessThan, GreaterThan."
    )
    target: str | None = Field(
        default=None,
        max_length=MAX_ASSERTION_TARGET,
        description="The value to compare with: text, a regular expression for "
        "Matches/NotMatches, or a duration (500ms) for ResponseTime. Not used by IsEmpty and "
        "NotEmpty. Regular expressions are RE2, the syntax of CEL's matches(): searched "
        "anywhere in the reply, in time linear in its length; no backreferences, lookaround or "
        "possessive repeats; ^ and $ match at the ends of the whole reply unless (?m).",
    )

    cross_field_rules = (
        CrossFieldRule(
            rule="self.comparison in ['IsEmpty', 'NotEmpty'] || has(self.target)",
            message_expression="'target is required for comparison ' + self.comparison",
            check=_assertion_target_required,
            field_path=".target",
        ),
        CrossFieldRule(
            rule=f"(self.source == 'ResponseTime') == (self.comparison in {_DATA_COMPARISONS_CEL})",
            message_expression="self.source == 'ResponseTime' ? "
            "'ResponseTime assertions compare with LessThan or GreaterThan' : "
            "self.comparison + ' applies to ResponseTime only'",
            check=_time_comparisons_match_source,
            field_path=".comparison",
        ),
        CrossFieldRule(
            rule="self.source != 'ResponseTime' || !has(self.target) || "
            f"self.target.matches(r'{DURATION_PATTERN}')",
            message_expression="'ResponseTime target must be a duration such as 500ms, not ' "
            "+ self.target",
            check=_time_target_is_duration,
            field_path=".target",
        ),
    )


# SHA-256 as hex, with or without colons (openssl x509 -fingerprint prints them with).
FINGERPRINT_PATTERN = r"^[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31}$"
# Base64 of a SHA-256 digest, as HPKP and curl --pinnedpubkey write it (sha256// is optional).
SPKI_PIN_PATTERN = r"^(sha256//)?[A-Za-z0-9+/]{43}=$"
MAX_PINS = 8


class PinScope(StrEnum):
    LEAF = "Leaf"
    CHAIN = "Chain"


Fingerprint = Annotated[
    str, Field(pattern=FINGERPRINT_PATTERN, max_length=95, description="SHA-256, hex.")
]
SpkiPin = Annotated[
    str, Field(pattern=SPKI_PIN_PATTERN, max_length=52, description="Base64 SHA-256 of the SPKI.")
]


def _pin_something(p: TlsPin) -> str | None:
    if not p.sha256_fingerprints and not p.spki_sha256 and p.issuer is None:
        return "a pin needs sha256Fingerprints, spkiSha256 or issuer"
    return None


class TlsPin(ApiModel):
    """What the server's certificate must be: each kind given must hold; within a kind, any
    listed value is enough (list the next certificate or key before a planned change)."""

    sha256_fingerprints: list[Fingerprint] = Field(
        default_factory=list,
        max_length=MAX_PINS,
        description="SHA-256 fingerprints of the DER certificate (as tls.certificate."
        "sha256Fingerprint, colons optional): changes with every renewal.",
    )
    spki_sha256: list[SpkiPin] = Field(
        default_factory=list,
        max_length=MAX_PINS,
        description="Base64 SHA-256 of the SubjectPublicKeyInfo (as tls.chain[].spkiSha256; "
        "openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 "
        "-binary | base64): survives renewals that keep the key.",
    )
    scope: PinScope = Field(
        default=PinScope.LEAF,
        description="Leaf: the fingerprints and keys are the leaf's. Chain: any certificate "
        "the server presented may match (pin an intermediate or the CA's key).",
    )
    issuer: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="The leaf's issuer distinguished name exactly as tls.certificate.issuer "
        "shows it (RFC 4514), e.g. CN=R11,O=Let's Encrypt,C=US.",
    )

    cross_field_rules = (
        CrossFieldRule(
            rule="(has(self.sha256Fingerprints) && size(self.sha256Fingerprints) > 0) || "
            "(has(self.spkiSha256) && size(self.spkiSha256) > 0) || has(self.issuer)",
            message_expression="'a pin needs sha256Fingerprints, spkiSha256 or issuer'",
            check=_pin_something,
        ),
    )


class BaselineAction(StrEnum):
    """What a finding of the security baseline does to the probe."""

    FAIL = "Fail"
    DEGRADE = "Degrade"
    IGNORE = "Ignore"


_ACTION = "Fail (Down), Degrade (a warning) or Ignore."


class KeySizeRule(ApiModel):
    """Every presented certificate's public key at least this large."""

    action: BaselineAction = Field(default=BaselineAction.DEGRADE, description=_ACTION)
    min_rsa_bits: int = Field(
        default=2048, ge=512, le=16384, description="Smallest RSA or DSA key, in bits."
    )
    min_ec_bits: int = Field(
        default=256, ge=160, le=571, description="Smallest elliptic-curve key, in bits."
    )


class SignatureRule(ApiModel):
    """No presented certificate signed with MD2, MD4, MD5 or SHA-1 (a self-signed root is
    exempt: nobody checks a trust anchor's own signature)."""

    action: BaselineAction = Field(default=BaselineAction.DEGRADE, description=_ACTION)


class CipherRule(ApiModel):
    """The negotiated cipher is forward secret (TLS 1.3, or ECDHE/DHE key exchange) and not
    weak (RC4, DES, 3DES, NULL, export, anonymous, MD5). Setting it lets the probe offer
    OpenSSL's DEFAULT cipher list, so that a server preferring such a cipher is seen using
    it rather than refused."""

    action: BaselineAction = Field(default=BaselineAction.DEGRADE, description=_ACTION)


class VersionRule(ApiModel):
    """The negotiated TLS version at least ``minimum``: below it the probe still connects
    (tls.minVersion is the hard floor) and reports the finding."""

    action: BaselineAction = Field(default=BaselineAction.DEGRADE, description=_ACTION)
    minimum: TlsVersion = Field(default=TlsVersion.TLS1_2, description="e.g. TLS1.3.")


class TlsBaseline(ApiModel):
    """A security baseline: each rule Fail, Degrade or Ignore. A rule not written applies with
    its defaults (Degrade) once baseline is set; without baseline nothing is checked."""

    key_size: KeySizeRule | None = Field(
        default=None, description="Key size (default: Degrade below RSA 2048, EC 256 bits)."
    )
    signature: SignatureRule | None = Field(
        default=None, description="Weak signature algorithms (default: Degrade)."
    )
    cipher: CipherRule | None = Field(
        default=None, description="Weak or not forward-secret cipher (default: Degrade)."
    )
    version: VersionRule | None = Field(
        default=None, description="TLS version below a minimum (default: Degrade below TLS1.2)."
    )


class RefusalAlert(StrEnum):
    """TLS alerts a server sends to a client without a certificate (RFC 8446 6.2)."""

    ANY = "Any"
    CERTIFICATE_REQUIRED = "certificate_required"
    HANDSHAKE_FAILURE = "handshake_failure"
    BAD_CERTIFICATE = "bad_certificate"
    ACCESS_DENIED = "access_denied"
    UNKNOWN_CA = "unknown_ca"


class ClientCertificateEnforcement(ApiModel):
    """Assert that the server refuses a client that presents no certificate."""

    alert: RefusalAlert = Field(
        default=RefusalAlert.ANY,
        description="The alert the refusal must carry (TLS 1.3 servers send "
        "certificate_required, TLS 1.2 ones usually handshake_failure); Any: any alert, or "
        "the connection closed before any data.",
    )


class TlsRevocation(ApiModel):
    """What to require of the leaf's OCSP status beyond the default (a revoked leaf is Down
    on every TLS monitor, whenever the server staples the response that says so)."""

    require_staple: bool = Field(
        default=False,
        description="The server must staple an OCSP response in the handshake (as a "
        "Must-Staple certificate requires): Down with TLS_OCSP_STAPLE_MISSING when it does not.",
    )
    query_responder: bool = Field(
        default=False,
        description="When nothing is stapled, ask the OCSP responder the leaf names "
        "(authorityInfoAccess, http:// only) over a connection of its own, within the probe's "
        "timeout (5s at most); not under insecureSkipVerify, where the certificate that names "
        "the responder is not verified. Off by default: it contacts a third host. Answers are "
        "cached per certificate until their nextUpdate (1h at most), failures for a minute.",
    )


def _one_ca_source(t: TlsSpec) -> str | None:
    if t.ca_secret_ref is not None and t.ca_config_map_ref is not None:
        return "set at most one of caSecretRef and caConfigMapRef"
    return None


class TlsSpec(ApiModel):
    """TLS on top of the TCP connection, and what to check about the server's certificate."""

    enabled: bool = Field(default=False, description="Perform a TLS handshake after connecting.")
    server_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=rf"^{HOSTNAME_PATTERN}$",
        description="Name sent as SNI and checked against the certificate. Default: spec.host.",
    )
    insecure_skip_verify: bool = Field(
        default=False,
        description="Do not fail on an untrusted, expired or mismatched certificate. The "
        "certificate and chain are still inspected, their expiry still reported, and the chain "
        "and host name still judged (tls.chainTrusted, tls.hostnameVerified; the chain verdict "
        "takes a second connection, made about once an hour per chain).",
    )
    min_version: TlsVersion = Field(
        default=TlsVersion.TLS1_2,
        description="Lowest TLS version accepted: TLS1.0, TLS1.1, TLS1.2 or TLS1.3.",
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="PEM CA bundle, in a Secret key, trusted instead of the system roots.",
    )
    ca_config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description="PEM CA bundle, in a ConfigMap key, trusted instead of the system roots.",
    )
    client_cert_secret_ref: SecretRef | None = Field(
        default=None,
        description="A kubernetes.io/tls Secret (tls.crt, tls.key) presented as the client "
        "certificate.",
    )
    expiry_warning: Duration = Field(
        default="14d",
        description="Report Degraded when the certificate expires within this duration.",
    )
    start_tls: bool = Field(
        default=False,
        alias="startTLS",
        description="Upgrade to TLS inside spec.protocol (SMTP/IMAP STARTTLS, POP3 STLS, FTP "
        "AUTH TLS, PostgreSQL SSLRequest, MySQL SSL request, LDAP StartTLS, XMPP starttls) "
        "instead of starting with TLS; every TLS check applies to the upgraded session. "
        "Requires enabled and a protocol that has an upgrade.",
    )
    baseline: TlsBaseline | None = Field(
        default=None,
        description="Security baseline: key size, weak signatures, weak or not "
        "forward-secret ciphers, TLS version; each finding has its own code "
        "(TLS_WEAK_KEY, TLS_WEAK_SIGNATURE, TLS_WEAK_CIPHER, TLS_OLD_VERSION), an error with "
        "Fail and a warning with Degrade. Unset: nothing is checked.",
    )
    client_certificate_enforced: ClientCertificateEnforcement | None = Field(
        default=None,
        description="After each probe, connect once more without a client certificate and "
        "expect to be refused: Down with TLS_CLIENT_CERTIFICATE_NOT_ENFORCED when that "
        "client gets in, TLS_CLIENT_CERTIFICATE_WRONG_ALERT when refused with another alert. "
        "Proves mTLS is still enforced; works after STARTTLS too.",
    )
    revocation: TlsRevocation | None = Field(
        default=None,
        description="OCSP requirements. Unset, the stapled status is still read and reported "
        "(tls.revocation in the result), and a revoked leaf is Down "
        "(TLS_CERTIFICATE_REVOKED).",
    )
    pin: TlsPin | None = Field(
        default=None,
        description="Require this certificate, key or issuer; anything else is Down "
        "(TLS_FINGERPRINT_MISMATCH, TLS_PUBLIC_KEY_PIN_MISMATCH, TLS_ISSUER_MISMATCH) before "
        "a byte is sent. Checked also under insecureSkipVerify, where it is what makes a "
        "self-signed certificate safe to accept.",
    )

    cross_field_rules = (
        CrossFieldRule(
            rule="!(has(self.caSecretRef) && has(self.caConfigMapRef))",
            message_expression="'set at most one of caSecretRef and caConfigMapRef'",
            check=_one_ca_source,
        ),
    )


def _step_one_payload(step: Step) -> str | None:
    if step.send is not None and step.send_base64 is not None:
        return "set at most one of send and sendBase64"
    return None


def _step_does_something(step: Step) -> str | None:
    if (
        step.send is None
        and step.send_base64 is None
        and step.expect is None
        and not step.start_tls
    ):
        return "a step needs send, sendBase64, expect or startTLS"
    return None


class Step(ApiModel):
    """One step of a dialog: send, then read until expect matches, or upgrade to TLS."""

    send: str | None = Field(
        default=None,
        max_length=MAX_SEND_TEXT,
        description="Text sent, encoded as UTF-8, exactly as written: nothing is appended "
        "(write the \\r\\n the protocol wants).",
    )
    send_base64: str | None = Field(
        default=None,
        max_length=MAX_SEND_BASE64,
        pattern=BASE64_PATTERN,
        description="Bytes sent, base64-encoded, byte for byte with nothing added.",
    )
    expect: str | None = Field(
        default=None,
        max_length=MAX_STEP_EXPECT,
        description="RE2 regular expression that what the target sends after this step's "
        "send must match (searched, ^ and $ at the ends unless (?m)) before the next step "
        "starts; the probe is Down (PROTOCOL_ERROR) when it does not within the timeout.",
    )
    # No default: a default inside a list item is written into the stored object, and
    # `kubectl apply` then sees every steps list as changed ("configured") on every apply.
    start_tls: bool | None = Field(
        default=None,
        alias="startTLS",
        description="Upgrade the connection to TLS here, after send and expect; needs "
        "spec.tls.enabled. The TLS checks and the certificate report apply to this session. "
        "Absent means no upgrade.",
    )

    cross_field_rules = (
        CrossFieldRule(
            rule="!(has(self.send) && has(self.sendBase64))",
            message_expression="'set at most one of send and sendBase64'",
            check=_step_one_payload,
        ),
        CrossFieldRule(
            rule="has(self.send) || has(self.sendBase64) || has(self.expect) || "
            "(has(self.startTLS) && self.startTLS)",
            message_expression="'a step needs send, sendBase64, expect or startTLS'",
            check=_step_does_something,
        ),
    )


def _interval_at_least_minimum(s: TcpMonitorSpec) -> str | None:
    if parse_duration(s.interval) >= MIN_INTERVAL_SECONDS - _EPSILON:
        return None
    return f"interval ({s.interval}) must be at least 1s"


def _timeout_at_least_minimum(s: TcpMonitorSpec) -> str | None:
    if parse_duration(s.timeout) >= MIN_TIMEOUT_SECONDS - _EPSILON:
        return None
    return f"timeout ({s.timeout}) must be at least 10ms"


def _timeout_within_interval(s: TcpMonitorSpec) -> str | None:
    if parse_duration(s.timeout) <= parse_duration(s.interval):
        return None
    return f"timeout ({s.timeout}) must not exceed interval ({s.interval})"


def _degraded_below_max(s: TcpMonitorSpec) -> str | None:
    if s.degraded_response_time is None or s.max_response_time is None:
        return None
    if parse_duration(s.degraded_response_time) < parse_duration(s.max_response_time):
        return None
    return (
        f"degradedResponseTime ({s.degraded_response_time}) must be less than "
        f"maxResponseTime ({s.max_response_time})"
    )


def _one_payload(s: TcpMonitorSpec) -> str | None:
    if sum(p is not None for p in (s.send, s.send_base64, s.send_from)) <= 1:
        return None
    return "set at most one of send, sendBase64 and sendFrom"


def _steps_without_payload(s: TcpMonitorSpec) -> str | None:
    if not s.steps or all(p is None for p in (s.send, s.send_base64, s.send_from)):
        return None
    return "steps replace send, sendBase64 and sendFrom: put the payload in a step"


def _protocol_alone(s: TcpMonitorSpec) -> str | None:
    if s.protocol is None:
        return None
    if s.steps:
        return "set either protocol or steps: a protocol is a built-in dialog"
    if any(p is not None for p in (s.send, s.send_base64, s.send_from)):
        return "a protocol sends its own messages: remove send, sendBase64 and sendFrom"
    return None


def _start_tls_needs_tls(s: TcpMonitorSpec) -> str | None:
    wanted = (s.tls is not None and s.tls.start_tls) or any(step.start_tls for step in s.steps)
    if wanted and not (s.tls is not None and s.tls.enabled):
        return "startTLS needs tls.enabled: true"
    return None


def _start_tls_protocol(s: TcpMonitorSpec) -> str | None:
    if s.tls is None or not s.tls.start_tls:
        return None
    if s.protocol is None:
        return "tls.startTLS needs a protocol (steps upgrade with steps[].startTLS)"
    if s.protocol not in STARTTLS_PROTOCOLS:
        return f"{s.protocol.value} has no STARTTLS: use tls without startTLS (implicit TLS)"
    return None


def _no_tls_for_ssh(s: TcpMonitorSpec) -> str | None:
    if s.protocol is Protocol.SSH and s.tls is not None and s.tls.enabled:
        return "SSH encrypts by itself: remove tls"
    return None


def _one_start_tls_step(s: TcpMonitorSpec) -> str | None:
    if sum(1 for step in s.steps if step.start_tls) <= 1:
        return None
    return "at most one step may be startTLS"


def _unreachable_only_connects(s: TcpMonitorSpec) -> str | None:
    if s.expect is not Reachability.UNREACHABLE:
        return None
    if (
        s.protocol is not None
        or s.steps
        or s.assertions
        or s.tls is not None
        or any(p is not None for p in (s.send, s.send_base64, s.send_from))
    ):
        return (
            "expect: Unreachable only tries to connect: remove protocol, steps, send, "
            "sendBase64, sendFrom, assertions and tls"
        )
    return None


def _step_expects_compile(s: TcpMonitorSpec) -> Violation | None:
    for index, step in enumerate(s.steps):
        if step.expect is not None:
            problem = regex_syntax_error(step.expect)
            if problem is not None:
                return Violation(f".steps[{index}].expect", problem)
    return None


def _quorum_within_locations(s: TcpMonitorSpec) -> str | None:
    if s.min_failed_locations <= len(s.locations):
        return None
    return "minFailedLocations exceeds the number of locations"


def _host_is_valid_ip_if_colon(s: TcpMonitorSpec) -> str | None:
    if ":" not in s.host:
        return None
    try:
        address = ipaddress.ip_address(s.host)
    except ValueError:
        address = None
    # Mirrors CEL isIP(): no zones, no IPv4-mapped IPv6.
    if (
        isinstance(address, ipaddress.IPv6Address)
        and address.scope_id is None
        and address.ipv4_mapped is None
    ):
        return None
    return f"host {s.host} is neither a DNS name nor an IP address"


def _regex_targets_compile(s: TcpMonitorSpec) -> Violation | None:
    for index, a in enumerate(s.assertions):
        if a.comparison in REGEX_COMPARISONS and a.target is not None:
            problem = regex_syntax_error(a.target)
            if problem is not None:
                return Violation(f".assertions[{index}].target", problem)
    return None


REGEX_REFUSED = "a Matches or NotMatches target is not a valid RE2 regular expression"
STEP_REGEX_REFUSED = "a steps[].expect is not a valid RE2 regular expression"
_STEP_EXPECTS_COMPILE = (
    "!has(self.steps) || "
    "(oldSelf.hasValue() && has(oldSelf.value().steps) && oldSelf.value().steps == self.steps) || "
    "self.steps.all(s, !has(s.expect) || ''.matches(s.expect) in [true, false])"
)
_PAYLOAD_SET = "(has(self.send) || has(self.sendBase64) || has(self.sendFrom))"
_START_TLS_SET = "(has(self.tls) && has(self.tls.startTLS) && self.tls.startTLS)"
_STEP_START_TLS = "self.steps.exists(s, has(s.startTLS) && s.startTLS)"
_TLS_ENABLED = "(has(self.tls) && has(self.tls.enabled) && self.tls.enabled)"
_REGEX_TARGETS_COMPILE = (
    "!has(self.assertions) || "
    "(oldSelf.hasValue() && has(oldSelf.value().assertions) && "
    "oldSelf.value().assertions == self.assertions) || "
    "self.assertions.all(a, !has(a.target) || !(a.comparison in ['Matches', 'NotMatches']) "
    "|| ''.matches(a.target) in [true, false])"
)


def _ms(field: str) -> str:
    return cel_milliseconds(f"self.{field}")


class TcpMonitorSpec(ApiModel):
    """What to probe, how often, and what counts as working."""

    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=HOST_PATTERN,
        description="DNS name or IP literal of the target (IPv6 without brackets).",
    )
    port: int = Field(ge=1, le=65535, description="TCP port of the target.")
    interval: Duration = Field(
        default="60s", description="How often to probe, e.g. 30s, 1m, 2h, 1d; at least 1s."
    )
    timeout: Duration = Field(
        default="10s",
        description="Upper bound for one probe, all phases together; 10ms to interval.",
    )
    ip_family: IpFamily = Field(
        default=IpFamily.ANY,
        description=(
            "Which resolved addresses to try: Any, IPv4 or IPv6. With Any, a runner whose "
            "network has one family only asks DNS for that one (AI_ADDRCONFIG)."
        ),
    )
    send: str | None = Field(
        default=None,
        max_length=MAX_SEND_TEXT,
        description="Text sent after connecting, encoded as UTF-8, exactly as written.",
    )
    send_base64: str | None = Field(
        default=None,
        max_length=MAX_SEND_BASE64,
        pattern=BASE64_PATTERN,
        description="Binary payload, base64-encoded, sent byte for byte with nothing added.",
    )
    send_from: SendFrom | None = Field(
        default=None,
        description="Payload read from a Secret key, for payloads that must not be in Git.",
    )
    assertions: tuple[Assertion, ...] = Field(
        default=(),
        max_length=MAX_ASSERTIONS,
        description="Checks on the reply; the probe is Down when any fails. When there is a "
        "ResponseData assertion the probe reads until every one can be decided, the peer "
        "closes, 64 KiB were read, or the timeout runs out.",
    )
    degraded_response_time: Duration | None = Field(
        default=None,
        description="Report Degraded when the total probe time exceeds this.",
    )
    max_response_time: Duration | None = Field(
        default=None,
        description="Report Down (RESPONSE_TIME_EXCEEDED) when the total probe time exceeds this.",
    )
    tls: TlsSpec | None = Field(default=None, description="TLS handshake and certificate checks.")
    protocol: Protocol | None = Field(
        default=None,
        description="Speak this protocol after connecting, proving the service answers and "
        "not just the port, without logging in; what it learnt (version, banner) is "
        "result.protocol.detail. A peer that does not speak it is Down (PROTOCOL_ERROR). "
        "Unset: a TCP connect (plus send and assertions).",
    )
    steps: tuple[Step, ...] = Field(
        default=(),
        max_length=MAX_STEPS,
        description="A dialog for protocols not built in: each step sends, waits for its "
        "expect to match, or upgrades to TLS, in order. Excludes send, sendBase64, sendFrom "
        "and protocol; assertions apply to everything read.",
    )
    expect: Reachability = Field(
        default=Reachability.REACHABLE,
        description="Reachable: the target must accept the connection. Unreachable: it must "
        "not (proof that a NetworkPolicy or firewall holds): refused, timed out or "
        "unreachable is Up, an accepted connection is Down (UNEXPECTEDLY_REACHABLE).",
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=3,
        description="Immediate re-tries of a failed probe before the failure counts; only "
        "those that can end within the interval are made.",
    )
    failure_threshold: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Consecutive failed probes needed before the monitor turns Down.",
    )
    success_threshold: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Consecutive successful probes needed before the monitor turns Up again.",
    )
    paused: bool = Field(default=False, description="Stop probing; the state shows Paused.")
    locations: tuple[LocationName, ...] = Field(
        default=("default",),
        max_length=MAX_LOCATIONS,
        # minItems by hand: pydantic's own min_length reports a second, bogus error when an
        # item is invalid (it counts only the valid items).
        json_schema_extra={"x-kubernetes-list-type": "set", "minItems": 1},
        description="Runner locations that probe this monitor, each on every interval.",
    )
    min_failed_locations: int = Field(
        default=1,
        ge=1,
        le=MAX_LOCATIONS,
        description="The monitor is Down when at least this many locations report Down.",
    )
    maintenance: MaintenanceSpec | None = Field(
        default=None,
        description="Maintenance windows: probing goes on, but the state shows Maintenance and "
        "no TargetDown or TargetUp Events are posted while one is open (see also the "
        "tcpmonitor.dev/maintenance-until annotation).",
    )

    @field_validator("locations")
    @classmethod
    def _unique_locations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("should have at least 1 item")
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            raise ValueError(f"Duplicate value: {duplicates[0]}")
        return value

    cross_field_rules = (
        CrossFieldRule(
            rule=f"{_ms('interval')} >= {round(MIN_INTERVAL_SECONDS * 1000)}",
            message_expression="'interval (' + self.interval + ') must be at least 1s'",
            check=_interval_at_least_minimum,
            field_path=".interval",
            on_write_only=True,
        ),
        CrossFieldRule(
            rule=f"{_ms('timeout')} >= {round(MIN_TIMEOUT_SECONDS * 1000)}",
            message_expression="'timeout (' + self.timeout + ') must be at least 10ms'",
            check=_timeout_at_least_minimum,
            field_path=".timeout",
            on_write_only=True,
        ),
        CrossFieldRule(
            rule=f"{_ms('timeout')} <= {_ms('interval')}",
            message_expression="'timeout (' + self.timeout + ') must not exceed interval (' "
            "+ self.interval + ')'",
            check=_timeout_within_interval,
            field_path=".timeout",
        ),
        CrossFieldRule(
            rule="!has(self.degradedResponseTime) || !has(self.maxResponseTime) || "
            f"{_ms('degradedResponseTime')} < {_ms('maxResponseTime')}",
            message_expression="'degradedResponseTime (' + self.degradedResponseTime + "
            "') must be less than maxResponseTime (' + self.maxResponseTime + ')'",
            check=_degraded_below_max,
            field_path=".degradedResponseTime",
        ),
        CrossFieldRule(
            rule="(has(self.send) ? 1 : 0) + (has(self.sendBase64) ? 1 : 0) + "
            "(has(self.sendFrom) ? 1 : 0) <= 1",
            message_expression="'set at most one of send, sendBase64 and sendFrom'",
            check=_one_payload,
        ),
        CrossFieldRule(
            rule=f"!has(self.steps) || size(self.steps) == 0 || !{_PAYLOAD_SET}",
            message_expression="'steps replace send, sendBase64 and sendFrom: put the payload "
            "in a step'",
            check=_steps_without_payload,
            field_path=".steps",
        ),
        CrossFieldRule(
            rule="!has(self.protocol) || ((!has(self.steps) || size(self.steps) == 0) && "
            f"!{_PAYLOAD_SET})",
            message_expression="(has(self.steps) && size(self.steps) > 0) ? "
            "'set either protocol or steps: a protocol is a built-in dialog' : "
            "'a protocol sends its own messages: remove send, sendBase64 and sendFrom'",
            check=_protocol_alone,
            field_path=".protocol",
        ),
        CrossFieldRule(
            rule=f"!({_START_TLS_SET} || (has(self.steps) && {_STEP_START_TLS})) || {_TLS_ENABLED}",
            message_expression="'startTLS needs tls.enabled: true'",
            check=_start_tls_needs_tls,
            field_path=".tls",
        ),
        CrossFieldRule(
            rule=f"!{_START_TLS_SET} || (has(self.protocol) && self.protocol in {_STARTTLS_CEL})",
            message_expression="!has(self.protocol) ? 'tls.startTLS needs a protocol (steps "
            "upgrade with steps[].startTLS)' : self.protocol + ' has no STARTTLS: use tls "
            "without startTLS (implicit TLS)'",
            check=_start_tls_protocol,
            field_path=".tls.startTLS",
        ),
        CrossFieldRule(
            rule=f"!has(self.protocol) || self.protocol != 'SSH' || !{_TLS_ENABLED}",
            message_expression="'SSH encrypts by itself: remove tls'",
            check=_no_tls_for_ssh,
            field_path=".tls",
        ),
        CrossFieldRule(
            rule="!has(self.steps) || "
            "self.steps.filter(s, has(s.startTLS) && s.startTLS).size() <= 1",
            message_expression="'at most one step may be startTLS'",
            check=_one_start_tls_step,
            field_path=".steps",
        ),
        CrossFieldRule(
            rule="!has(self.expect) || self.expect != 'Unreachable' || "
            f"(!has(self.protocol) && (!has(self.steps) || size(self.steps) == 0) && "
            f"(!has(self.assertions) || size(self.assertions) == 0) && !has(self.tls) && "
            f"!{_PAYLOAD_SET})",
            message_expression="'expect: Unreachable only tries to connect: remove protocol, "
            "steps, send, sendBase64, sendFrom, assertions and tls'",
            check=_unreachable_only_connects,
            field_path=".expect",
        ),
        CrossFieldRule(
            rule="self.minFailedLocations <= size(self.locations)",
            # Static: string(int) makes the API server estimate the cost as unbounded.
            message_expression="'minFailedLocations exceeds the number of locations'",
            check=_quorum_within_locations,
            field_path=".minFailedLocations",
        ),
        CrossFieldRule(
            rule="!self.host.contains(':') || isIP(self.host)",
            message_expression="'host ' + self.host + ' is neither a DNS name nor an IP address'",
            check=_host_is_valid_ip_if_colon,
            field_path=".host",
        ),
        # CEL cannot ask whether a string is a regex, but matches() fails to evaluate on a
        # pattern it cannot compile, and the API server refuses an object whose rule fails,
        # quoting the compile error and `message`. `in [true, false]` keeps that error (a bare
        # `|| true` would absorb it); the empty subject keeps the cost estimate near zero.
        # A failure to evaluate is never ratcheted, so the rule passes when the assertions
        # did not change: an object stored before this rule can still take status updates
        # and edits elsewhere. (Comparing the optional
        # `oldSelf.value().?assertions` instead is estimated far over the CEL cost budget.)
        CrossFieldRule(
            rule=_REGEX_TARGETS_COMPILE,
            message_expression=f"'{REGEX_REFUSED}'",
            message=REGEX_REFUSED,
            check=_regex_targets_compile,
            optional_old_self=True,
            # A stored pattern RE2 refuses reaches the runtime, which reports it on the monitor
            # (Ready=False InvalidSpec) instead of the operator dropping the object unseen.
            on_write_only=True,
        ),
        CrossFieldRule(
            rule=_STEP_EXPECTS_COMPILE,
            message_expression=f"'{STEP_REGEX_REFUSED}'",
            message=STEP_REGEX_REFUSED,
            check=_step_expects_compile,
            optional_old_self=True,
            on_write_only=True,
        ),
    )

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)
