"""The result of one probe: whether the target works, how fast each phase was, and why not.

The same object is printed by ``tcpmonitor probe -o json`` and stored as
``status.lastResult``, so its JSON names are API and change only with the API version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from .spec import AssertionSource, Comparison

# The bounds of every string a target can influence. The CRD is generated from these models, so
# these are also the API server's limits; the probe cuts to them (api/printable.py) before a
# result exists, because one over-long string makes every status write of the monitor fail.
MAX_EXCERPT = 256
MAX_MESSAGE = 1024
MAX_DISTINGUISHED_NAME = 1024
MAX_DNS_NAME = 253
MAX_DNS_NAMES = 32
MAX_CIPHER = 128
MAX_PROTOCOL_DETAIL = 256
MAX_STEP_OUTCOMES = 16
# Certificates of the presented chain kept in a result; real chains have two to four.
MAX_CHAIN = 8
MAX_WARNINGS = 8


class Verdict(StrEnum):
    """The verdict of one probe (a monitor's state adds Unknown and Paused)."""

    UP = "Up"
    DEGRADED = "Degraded"
    DOWN = "Down"


class ErrorCode(StrEnum):
    """Stable error codes; alerts and dashboards match on these, so never rename one."""

    DNS_NOT_FOUND = "DNS_NOT_FOUND"
    DNS_TIMEOUT = "DNS_TIMEOUT"
    DNS_ERROR = "DNS_ERROR"
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
    HOST_UNREACHABLE = "HOST_UNREACHABLE"
    NETWORK_UNREACHABLE = "NETWORK_UNREACHABLE"
    CONNECTION_RESET = "CONNECTION_RESET"
    CONNECTION_CLOSED = "CONNECTION_CLOSED"
    TLS_HANDSHAKE_FAILED = "TLS_HANDSHAKE_FAILED"
    TLS_CERTIFICATE_EXPIRED = "TLS_CERTIFICATE_EXPIRED"
    TLS_CERTIFICATE_NOT_YET_VALID = "TLS_CERTIFICATE_NOT_YET_VALID"
    TLS_HOSTNAME_MISMATCH = "TLS_HOSTNAME_MISMATCH"
    TLS_UNTRUSTED_CERTIFICATE = "TLS_UNTRUSTED_CERTIFICATE"
    TLS_VERSION_TOO_OLD = "TLS_VERSION_TOO_OLD"
    SEND_TIMEOUT = "SEND_TIMEOUT"
    READ_TIMEOUT = "READ_TIMEOUT"
    ASSERTION_FAILED = "ASSERTION_FAILED"
    RESPONSE_TIME_EXCEEDED = "RESPONSE_TIME_EXCEEDED"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    STARTTLS_REFUSED = "STARTTLS_REFUSED"
    UNEXPECTEDLY_REACHABLE = "UNEXPECTEDLY_REACHABLE"
    TLS_FINGERPRINT_MISMATCH = "TLS_FINGERPRINT_MISMATCH"
    TLS_PUBLIC_KEY_PIN_MISMATCH = "TLS_PUBLIC_KEY_PIN_MISMATCH"
    TLS_ISSUER_MISMATCH = "TLS_ISSUER_MISMATCH"
    TLS_WEAK_KEY = "TLS_WEAK_KEY"
    TLS_WEAK_SIGNATURE = "TLS_WEAK_SIGNATURE"
    TLS_WEAK_CIPHER = "TLS_WEAK_CIPHER"
    TLS_OLD_VERSION = "TLS_OLD_VERSION"
    TLS_CLIENT_CERTIFICATE_NOT_ENFORCED = "TLS_CLIENT_CERTIFICATE_NOT_ENFORCED"
    TLS_CLIENT_CERTIFICATE_WRONG_ALERT = "TLS_CLIENT_CERTIFICATE_WRONG_ALERT"
    TARGET_FORBIDDEN = "TARGET_FORBIDDEN"
    TLS_CERTIFICATE_REVOKED = "TLS_CERTIFICATE_REVOKED"
    TLS_OCSP_STAPLE_MISSING = "TLS_OCSP_STAPLE_MISSING"


# The security baseline's codes are errors or warnings as the rule's action says.
_BASELINE_DOCS = {
    "TLS_WEAK_KEY": "A presented certificate's key is below tls.baseline.keySize.",
    "TLS_WEAK_SIGNATURE": "A presented certificate (not a self-signed root) is signed with "
    "MD2, MD4, MD5 or SHA-1.",
    "TLS_WEAK_CIPHER": "The negotiated cipher is not forward secret (RSA or static DH key "
    "exchange) or is weak (RC4, DES, 3DES, NULL, export, anonymous, MD5).",
    "TLS_OLD_VERSION": "The negotiated TLS version is below tls.baseline.version.minimum.",
}

ERROR_CODE_DOCS: dict[ErrorCode, str] = {
    ErrorCode.DNS_NOT_FOUND: "The name does not exist (NXDOMAIN), has no address of the "
    "requested ipFamily, or is under the reserved .invalid domain.",
    ErrorCode.DNS_TIMEOUT: "Name resolution did not finish within the timeout.",
    ErrorCode.DNS_ERROR: "Name resolution failed otherwise (resolver unreachable, SERVFAIL).",
    ErrorCode.CONNECTION_REFUSED: "The target answered the SYN with a reset: nothing listens.",
    ErrorCode.CONNECT_TIMEOUT: "No answer to the SYN within the timeout (filtered, blackholed).",
    ErrorCode.HOST_UNREACHABLE: "No route to the host (ICMP host unreachable, ARP failure).",
    ErrorCode.NETWORK_UNREACHABLE: "No route to the network from the probing host.",
    ErrorCode.CONNECTION_RESET: "The peer reset an established connection.",
    ErrorCode.CONNECTION_CLOSED: "The peer closed the connection before sending the expected "
    "data or before the TLS handshake completed.",
    ErrorCode.TLS_HANDSHAKE_FAILED: "The TLS handshake failed for another reason (no shared "
    "cipher, client certificate refused, not a TLS server).",
    ErrorCode.TLS_CERTIFICATE_EXPIRED: "The server certificate (or one in its chain) expired.",
    ErrorCode.TLS_CERTIFICATE_NOT_YET_VALID: "The server certificate's notBefore is in the future.",
    ErrorCode.TLS_HOSTNAME_MISMATCH: "The certificate does not name tls.serverName (or host).",
    ErrorCode.TLS_UNTRUSTED_CERTIFICATE: "The certificate does not chain to a trusted CA.",
    ErrorCode.TLS_VERSION_TOO_OLD: "The server offers no TLS version at or above tls.minVersion.",
    ErrorCode.SEND_TIMEOUT: "The target did not take the whole payload within the timeout: it "
    "stopped reading.",
    ErrorCode.READ_TIMEOUT: "ResponseData assertions were set but no byte arrived within the "
    "timeout.",
    ErrorCode.ASSERTION_FAILED: "At least one assertion failed; see assertions[].",
    ErrorCode.RESPONSE_TIME_EXCEEDED: "The probe worked but took longer than maxResponseTime.",
    ErrorCode.PROTOCOL_ERROR: "The peer does not speak spec.protocol, or a step's expect did "
    "not match: the message quotes what it said.",
    ErrorCode.STARTTLS_REFUSED: "The server does not offer the in-protocol TLS upgrade "
    "(tls.startTLS or a startTLS step), or refused it.",
    ErrorCode.UNEXPECTEDLY_REACHABLE: "expect is Unreachable but the target accepted the "
    "connection: the NetworkPolicy or firewall does not hold.",
    ErrorCode.TLS_FINGERPRINT_MISMATCH: "No certificate in tls.pin.scope has a SHA-256 "
    "fingerprint listed in tls.pin.sha256Fingerprints: another certificate is served.",
    ErrorCode.TLS_PUBLIC_KEY_PIN_MISMATCH: "No certificate in tls.pin.scope has a public key "
    "listed in tls.pin.spkiSha256: the key changed (or another server answers).",
    ErrorCode.TLS_ISSUER_MISMATCH: "The leaf's issuer is not tls.pin.issuer: another CA issued it.",
    **{ErrorCode(code): f"{text} (rule action Fail)" for code, text in _BASELINE_DOCS.items()},
    ErrorCode.TLS_CLIENT_CERTIFICATE_NOT_ENFORCED: "tls.clientCertificateEnforced is set and "
    "a client without a certificate completed the handshake and was not refused: mTLS is "
    "off or optional.",
    ErrorCode.TLS_CLIENT_CERTIFICATE_WRONG_ALERT: "A client without a certificate was "
    "refused, but not with tls.clientCertificateEnforced.alert.",
    ErrorCode.TARGET_FORBIDDEN: "Every address of the target is refused by the target policy "
    "(a TcpMonitorPolicy rule, its defaultAction, or the built-in refusal of link-local, "
    "cloud metadata and loopback addresses): no connection was attempted. The message names "
    "the rule.",
    ErrorCode.TLS_CERTIFICATE_REVOKED: "The leaf is revoked, by the OCSP response the server "
    "stapled or (tls.revocation.queryResponder) its CA's responder gave; checked on every TLS "
    "monitor, tls.revocation set or not. tls.revocation says when and why.",
    ErrorCode.TLS_OCSP_STAPLE_MISSING: "tls.revocation.requireStaple is set and the server "
    "stapled no OCSP response (what a Must-Staple certificate needs).",
}


class WarningCode(StrEnum):
    """Reasons for Degraded; a probe may carry several."""

    RESPONSE_TIME_DEGRADED = "RESPONSE_TIME_DEGRADED"
    TLS_CERTIFICATE_EXPIRING = "TLS_CERTIFICATE_EXPIRING"
    TLS_CERTIFICATE_EXPIRED = "TLS_CERTIFICATE_EXPIRED"
    TLS_CERTIFICATE_UNREADABLE = "TLS_CERTIFICATE_UNREADABLE"
    TLS_CHAIN_CERTIFICATE_EXPIRING = "TLS_CHAIN_CERTIFICATE_EXPIRING"
    TLS_CHAIN_CERTIFICATE_EXPIRED = "TLS_CHAIN_CERTIFICATE_EXPIRED"
    TLS_WEAK_KEY = "TLS_WEAK_KEY"
    TLS_WEAK_SIGNATURE = "TLS_WEAK_SIGNATURE"
    TLS_WEAK_CIPHER = "TLS_WEAK_CIPHER"
    TLS_OLD_VERSION = "TLS_OLD_VERSION"
    TLS_REVOCATION_UNKNOWN = "TLS_REVOCATION_UNKNOWN"
    TLS_OCSP_RESPONSE_INVALID = "TLS_OCSP_RESPONSE_INVALID"
    TLS_OCSP_RESPONDER_FAILED = "TLS_OCSP_RESPONDER_FAILED"


WARNING_CODE_DOCS: dict[WarningCode, str] = {
    WarningCode.RESPONSE_TIME_DEGRADED: "Total time exceeded degradedResponseTime.",
    WarningCode.TLS_CERTIFICATE_EXPIRING: "The certificate expires within tls.expiryWarning.",
    WarningCode.TLS_CERTIFICATE_EXPIRED: "The certificate has expired, reported as a warning "
    "because tls.insecureSkipVerify is set.",
    WarningCode.TLS_CERTIFICATE_UNREADABLE: "The handshake worked but the certificate does not "
    "parse as strict clients require (malformed DER, a name that is not ASCII or not UTF-8, a "
    "broken extension); tls.certificate shows what could be read, or is null.",
    WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRING: "A certificate of the presented chain other "
    "than the leaf (an intermediate, or a root the server sends) expires within "
    "tls.expiryWarning (the earliest such is named); tls.chainExpiry says when the first of "
    "the chain expires.",
    WarningCode.TLS_CHAIN_CERTIFICATE_EXPIRED: "A certificate of the presented chain other "
    "than the leaf has expired; the warning names it, which OpenSSL's verification error does "
    "not. With verification the probe is also Down (TLS_CERTIFICATE_EXPIRED) unless the trust "
    "store completes the chain another way, which clients with other trust stores cannot.",
    **{WarningCode(code): f"{text} (rule action Degrade)" for code, text in _BASELINE_DOCS.items()},
    WarningCode.TLS_REVOCATION_UNKNOWN: "The OCSP response (stapled, or from the responder) "
    "says the CA does not know the leaf: status unknown.",
    WarningCode.TLS_OCSP_RESPONSE_INVALID: "The OCSP response cannot be trusted: not for this "
    "certificate, not signed by its issuer or a delegated responder, past its nextUpdate, "
    "dated in the future, or not a successful response; tls.revocation.message says which.",
    WarningCode.TLS_OCSP_RESPONDER_FAILED: "tls.revocation.queryResponder is set, no response "
    "was stapled, and the certificate's OCSP responder could not be asked (no answer in time, "
    "an HTTP error, tryLater).",
}


class ResultModel(BaseModel):
    """Base of result and status objects: camelCase, and tolerant of fields it does not know.

    Tolerant because status is read back after an upgrade or a downgrade of the operator.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    @classmethod
    def assemble(cls, **values: Any) -> Self:
        """``model_construct`` for values a probe made itself, every field given by name.

        Equal to ``model_construct``, field for field, but for ``model_fields_set``, which
        names only the values that are not the field's default: every runner keeps each
        monitor's last result, and a set of five names or more is 728 bytes, more than the
        rest of an Up result (nothing dumps with ``exclude_unset``). And at a fifth of the
        cost: ``model_construct`` looks up each field's aliases and default on every call, and
        a TLS probe builds six models, which came to a tenth of its CPU beside OpenSSL's
        handshake. A missing or unknown name raises TypeError.
        """
        shape = _SHAPES.get(cls) or _shape(cls)
        if len(values) != len(shape.names):
            unknown = sorted(values.keys() ^ set(shape.names))
            raise TypeError(f"{cls.__name__}.assemble: fields missing or unknown: {unknown}")
        ordered = {name: values[name] for name in shape.names}
        given = {
            name
            for name, value in ordered.items()
            if not (
                (value is None and name in shape.none_default)
                or (name in shape.list_default and value == [])
            )
        }
        if not shape.plain:
            return cls.model_construct(given, **ordered)
        model = cls.__new__(cls)
        # What model_construct sets when every field is given and nothing is aliased away.
        object.__setattr__(model, "__dict__", ordered)
        object.__setattr__(model, "__pydantic_fields_set__", given)
        object.__setattr__(model, "__pydantic_extra__", None)
        object.__setattr__(model, "__pydantic_private__", None)
        return model


@dataclass(frozen=True)
class _Shape:
    names: tuple[str, ...]
    none_default: frozenset[str]  # fields whose default is None
    list_default: frozenset[str]  # fields whose default is an empty list
    # No post-init hook, private attribute, root model or extra fields kept: what
    # ResultModel.assemble sets by hand is all model_construct would.
    plain: bool


_SHAPES: dict[type[ResultModel], _Shape] = {}


def _shape(model: type[ResultModel]) -> _Shape:
    fields = model.model_fields
    shape = _Shape(
        tuple(fields),
        frozenset(name for name, field in fields.items() if field.default is None),
        frozenset(name for name, field in fields.items() if field.default_factory is list),
        model.__pydantic_post_init__ is None
        and not model.__private_attributes__
        and not model.__pydantic_root_model__
        and model.model_config.get("extra") != "allow"
        and all(_own_aliases(name, field, fields) for name, field in fields.items()),
    )
    _SHAPES[model] = shape
    return shape


def _own_aliases(name: str, field: FieldInfo, fields: dict[str, FieldInfo]) -> bool:
    """Whether no alias of the field could take another field's value: model_construct looks
    values up by alias first (``dnsNames`` for ``dns_names``), by name next."""
    aliases = (field.alias, field.validation_alias)
    return all(
        a is None or (isinstance(a, str) and (a == name or a not in fields)) for a in aliases
    )


class Timings(ResultModel):
    """Milliseconds per phase; null for a phase that was not performed."""

    dns: float | None = Field(default=None, description="Name resolution, ms.")
    connect: float | None = Field(default=None, description="TCP connect, ms.")
    tls: float | None = Field(default=None, description="TLS handshake, ms.")
    data: float | None = Field(
        default=None,
        description="Sending and reading, ms; with a protocol or steps the whole dialog, an "
        "in-protocol TLS upgrade included (also shown as tls).",
    )
    total: float | None = Field(default=None, description="Whole probe, ms.")


class Problem(ResultModel):
    """An error or warning: a stable code and a human message."""

    code: str = Field(max_length=64, description="Stable code, see the README reference.")
    message: str = Field(max_length=MAX_MESSAGE, description="Human-readable detail.")


class ResponseSummary(ResultModel):
    """What was read from the target."""

    bytes: int = Field(ge=0, description="Number of bytes read.")
    excerpt: str = Field(
        max_length=MAX_EXCERPT,
        description="Start of the response, non-printable bytes escaped (\\n, \\xHH); "
        "empty when a TcpMonitorPolicy rule says recordResponses: false.",
    )


class RequestSummary(ResultModel):
    """What was sent to the target: never the bytes of a payload read from a Secret."""

    bytes: int = Field(ge=0, description="Number of payload bytes handed to the connection.")
    excerpt: str | None = Field(
        default=None,
        max_length=MAX_EXCERPT,
        description="Start of the payload, escaped like the response excerpt; null when the "
        "payload came from a Secret.",
    )
    from_secret: bool = Field(
        default=False,
        description="The payload came from a Secret (spec.sendFrom): only its size is shown.",
    )


class AssertionOutcome(ResultModel):
    """One assertion with the value it saw."""

    source: AssertionSource = Field(description="ResponseData or ResponseTime.")
    comparison: Comparison = Field(description="The comparison from the spec.")
    target: str | None = Field(
        default=None,
        max_length=1024,
        description="Expected value; null for IsEmpty and NotEmpty, and in locations[].lastResult.",
    )
    actual: str | None = Field(
        default=None,
        max_length=MAX_EXCERPT,
        description="Observed value (excerpt); null in locations[].lastResult.",
    )
    passed: bool = Field(description="Whether the assertion held.")


class Certificate(ResultModel):
    """The server's leaf certificate, inspected even when verification failed."""

    subject: str = Field(
        max_length=MAX_DISTINGUISHED_NAME, description="Subject distinguished name (escaped)."
    )
    issuer: str = Field(
        max_length=MAX_DISTINGUISHED_NAME, description="Issuer distinguished name (escaped)."
    )
    dns_names: list[
        Annotated[str, Field(max_length=MAX_DNS_NAME, description="A DNS name (escaped).")]
    ] = Field(
        default_factory=list,
        max_length=MAX_DNS_NAMES,
        description="Subject alternative DNS names; when there are more than "
        f"{MAX_DNS_NAMES}, the last entry says how many were left out.",
    )
    not_before: datetime = Field(description="Start of validity.")
    not_after: datetime = Field(description="End of validity.")
    days_remaining: float = Field(description="Days until notAfter; negative once expired.")
    sha256_fingerprint: str = Field(
        max_length=128, description="SHA-256 of the DER certificate, colon-separated hex."
    )


class ChainCertificate(ResultModel):
    """One certificate as the server presented it; a field that does not parse is null."""

    subject: str = Field(
        max_length=MAX_DISTINGUISHED_NAME, description="Subject distinguished name (escaped)."
    )
    issuer: str = Field(
        max_length=MAX_DISTINGUISHED_NAME, description="Issuer distinguished name (escaped)."
    )
    not_before: datetime | None = Field(default=None, description="Start of validity.")
    not_after: datetime | None = Field(default=None, description="End of validity.")
    sha256_fingerprint: str = Field(
        max_length=128, description="SHA-256 of the DER certificate, colon-separated hex."
    )
    key_type: str | None = Field(
        default=None, max_length=16, description="RSA, EC, DSA, Ed25519, Ed448 or other."
    )
    key_size: int | None = Field(
        default=None, ge=0, le=65536, description="Public key size in bits."
    )
    spki_sha256: str | None = Field(
        default=None,
        max_length=64,
        description="Base64 SHA-256 of the SubjectPublicKeyInfo (the public-key pin, as in "
        "HPKP and curl --pinnedpubkey): unchanged by a renewal that keeps the key.",
    )
    signature_algorithm: str | None = Field(
        default=None,
        max_length=64,
        description="How the issuer signed it, e.g. sha256WithRSAEncryption, ecdsa-with-SHA384.",
    )


class RevocationStatus(StrEnum):
    """What is known of the leaf's revocation."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    NONE = "none"
    INVALID = "invalid"
    NOT_CHECKED = "notChecked"


class RevocationSource(StrEnum):
    STAPLE = "staple"
    RESPONDER = "responder"


class RevocationInfo(ResultModel):
    """The leaf's OCSP status, from the handshake's staple or the CA's responder."""

    status: RevocationStatus = Field(
        description="good, revoked or unknown: what a valid OCSP response says; none: the "
        "server stapled nothing (and no responder was asked); invalid: a response that cannot "
        "be trusted (message says why); notChecked: not judged (stapling not supported by "
        "this Python/OpenSSL, the issuer not presented, the responder not reachable)."
    )
    # A string, not the enum: status carries explicit nulls, and a nullable enum is refused
    # by strict schema validators (the values are RevocationSource's).
    source: str | None = Field(
        default=None,
        max_length=16,
        description="staple (in the TLS handshake) or responder (tls.revocation."
        "queryResponder); null when there was no response.",
    )
    this_update: datetime | None = Field(default=None, description="The response's thisUpdate.")
    next_update: datetime | None = Field(
        default=None, description="The response's nextUpdate: it must not be used after."
    )
    revoked_at: datetime | None = Field(default=None, description="When it was revoked.")
    reason: str | None = Field(
        default=None,
        max_length=32,
        description="The CRL reason given with revoked (keyCompromise, superseded...); null "
        "when none was given.",
    )
    message: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE,
        description="Why invalid or notChecked, what the responder failed with, or why none.",
    )


class TlsInfo(ResultModel):
    """The negotiated TLS session and the certificate."""

    version: str | None = Field(default=None, max_length=16, description="e.g. TLSv1.3.")
    cipher: str | None = Field(default=None, max_length=MAX_CIPHER, description="Cipher suite.")
    verified: bool = Field(
        description="Whether the chain and host name were verified (false under "
        "insecureSkipVerify, which verifies neither; chainTrusted and hostnameVerified say "
        "what verification would have found)."
    )
    verify_error: str | None = Field(
        default=None, max_length=MAX_MESSAGE, description="Why verification failed."
    )
    chain_trusted: bool | None = Field(
        default=None,
        description="Whether the presented chain verifies against the CA bundle or the system "
        "roots (signatures, validity dates, OpenSSL's security level), judged also under "
        "insecureSkipVerify; null when it could not be checked.",
    )
    chain_error: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE,
        description="Why the chain is not trusted (OpenSSL's reason), or why it was not checked.",
    )
    hostname_verified: bool | None = Field(
        default=None,
        description="Whether the leaf names tls.serverName (or host), by OpenSSL's rules "
        "(subjectAltName, whole-label wildcards, the CN only without DNS names), judged also "
        "under insecureSkipVerify and when the chain is untrusted; null when no certificate "
        "was read.",
    )
    hostname_error: str | None = Field(
        default=None, max_length=MAX_MESSAGE, description="Why the host name does not match."
    )
    client_certificate_enforced: bool | None = Field(
        default=None,
        description="With tls.clientCertificateEnforced: whether a client without a "
        "certificate was refused; null when not checked.",
    )
    refusal_alert: str | None = Field(
        default=None,
        max_length=64,
        description="The TLS alert that refused it (e.g. certificate_required), or "
        "connection_closed.",
    )
    certificate: Certificate | None = Field(default=None, description="The leaf certificate.")
    chain: list[ChainCertificate] = Field(
        default_factory=list,
        max_length=MAX_CHAIN,
        description=f"Every certificate the server presented, leaf first, in its order (at most "
        f"{MAX_CHAIN}; chainLength says how many there were), read also when verification "
        "failed. Empty in locations[].lastResult, and when the chain could not be read.",
    )
    chain_length: int | None = Field(
        default=None,
        ge=0,
        le=1024,
        description="How many certificates the server presented; null when not read.",
    )
    chain_expiry: datetime | None = Field(
        default=None,
        description="The earliest notAfter across the presented chain: when the first of its "
        "certificates expires, leaf or not.",
    )
    chain_expiry_subject: str | None = Field(
        default=None,
        max_length=MAX_DISTINGUISHED_NAME,
        description="Subject of the certificate that expires first (escaped).",
    )
    revocation: RevocationInfo | None = Field(
        default=None,
        description="The leaf's OCSP status (stapled, or the responder's with tls.revocation."
        "queryResponder); null when the handshake did not complete.",
    )


class ProtocolInfo(ResultModel):
    """What the protocol exchange learnt about the server."""

    name: str = Field(max_length=16, description="The protocol spoken (spec.protocol).")
    detail: str | None = Field(
        default=None,
        max_length=MAX_PROTOCOL_DETAIL,
        description="Server version or banner, one line, escaped; null when the server did "
        "not say or the exchange failed before it did.",
    )


class StepOutcome(ResultModel):
    """One step of spec.steps: how long it took and whether it completed."""

    time: float = Field(
        description="Sending, reading until expect matched, or the TLS upgrade, ms."
    )
    passed: bool = Field(description="Whether the step completed (its expect matched).")


class ProbeResult(ResultModel):
    """Everything one probe learned."""

    state: Verdict = Field(description="Up, Degraded or Down.")
    location: str | None = Field(
        default=None,
        max_length=63,
        description="The location that probed (distributed mode); null when the operator or "
        "tcpmonitor run probed.",
    )
    started_at: datetime = Field(description="When the probe started (RFC 3339).")
    remote_address: str | None = Field(
        default=None, max_length=64, description="ip:port actually connected to."
    )
    timings: Timings = Field(default_factory=Timings, description="Per-phase timings, ms.")
    error: Problem | None = Field(default=None, description="Why the probe is Down.")
    warnings: list[Problem] = Field(
        default_factory=list, max_length=MAX_WARNINGS, description="Why the probe is Degraded."
    )
    request: RequestSummary | None = Field(default=None, description="What was sent.")
    response: ResponseSummary | None = Field(default=None, description="What was read.")
    assertions: list[AssertionOutcome] = Field(
        default_factory=list, max_length=16, description="Each assertion with its outcome."
    )
    tls: TlsInfo | None = Field(default=None, description="TLS session and certificate.")
    protocol: ProtocolInfo | None = Field(
        default=None, description="The protocol spoken and what it learnt; null for raw TCP."
    )
    steps: list[StepOutcome] = Field(
        default_factory=list,
        max_length=MAX_STEP_OUTCOMES,
        description="Each step of spec.steps that was started, in order; a failed step is "
        "the last and named by index in error.message.",
    )

    def to_json_dict(self) -> dict[str, object]:
        """The wire form: camelCase, RFC 3339 times, nulls kept so readers see every phase."""
        return self.model_dump(mode="json", by_alias=True)
