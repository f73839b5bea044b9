"""A spec compiled into everything one probe needs, checked once instead of on every probe.

Compilation is where specs the schema cannot catch are found (a regex that does not compile,
base64 that does not decode, a CA bundle OpenSSL refuses): the operator reports those as
``Ready=False`` and ``tcpmonitor validate`` as a line, instead of failing at probe time.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field

from ..api import IpFamily, Protocol, Reachability, Reason, TcpMonitorSpec, parse_duration
from ..api.regex import RegexError, compile_regex
from ..api.spec import (
    BaselineAction,
    CipherRule,
    KeySizeRule,
    PinScope,
    RefusalAlert,
    SignatureRule,
    TlsBaseline,
    TlsPin,
    TlsVersion,
    VersionRule,
)
from ..policy import TargetGuard
from .assertions import AssertionCompileError, DataCheck, TimeCheck, compile_assertions
from .excerpt import NO_SECRETS, Redactor
from .steps import PlannedStep
from .tls import ClientCertificate, TlsSetupError, build_contexts

_FAMILIES = {
    IpFamily.ANY: socket.AF_UNSPEC,
    IpFamily.IPV4: socket.AF_INET,
    IpFamily.IPV6: socket.AF_INET6,
}

READ_CAP = 64 * 1024


class PlanError(ValueError):
    """A spec that is valid in shape but cannot be probed; ``field`` is the spec path.

    ``reason`` becomes the Ready condition's reason: ``InvalidSpec`` for the spec itself,
    ``ReferenceNotFound`` when a Secret or ConfigMap (or a key of it) is missing,
    ``ReferenceUnreadable`` when the API would not give it. ``detail`` is for the operator's
    log only, never for status or Events: what the API server said about a Secret.
    """

    def __init__(
        self,
        field: str,
        message: str,
        reason: str = Reason.INVALID_SPEC.value,
        *,
        detail: str | None = None,
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.reason = reason
        self.detail = detail


def secret_unavailable(name: str, key: str) -> str:
    """The one answer for a Secret key a monitor cannot use, whatever the cause.

    A missing Secret, a Secret without the key and a Secret the operator may not read all read
    the same: the operator reads Secrets its users may not, and a different text for each would
    tell whoever writes a monitor which Secrets and keys exist.
    """
    return f'Secret "{name}" key "{key}": not found or not readable'


@dataclass(frozen=True)
class ProbeMaterial:
    """Bytes the spec only references (Secrets, ConfigMaps, files), resolved by the caller.

    The engine knows nothing about where they came from: the operator reads Secrets, the
    command line reads files, and both hand over the same object.
    """

    # Kept out of repr: a plan or material in a log line or a traceback shows no Secret.
    payload: bytes | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    client_certificate: ClientCertificate | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PinPlan:
    """tls.pin normalised: fingerprints as colon-separated upper hex, keys as bare base64."""

    fingerprints: frozenset[str]
    spki: frozenset[str]
    chain: bool  # scope Chain: any presented certificate may match, not only the leaf
    issuer: str | None


def _pin_plan(pin: TlsPin | None) -> PinPlan | None:
    if pin is None:
        return None
    fingerprints = set()
    for value in pin.sha256_fingerprints:
        digits = value.replace(":", "").upper()
        fingerprints.add(":".join(digits[i : i + 2] for i in range(0, len(digits), 2)))
    return PinPlan(
        fingerprints=frozenset(fingerprints),
        spki=frozenset(v.removeprefix("sha256//") for v in pin.spki_sha256),
        chain=pin.scope is PinScope.CHAIN,
        issuer=pin.issuer,
    )


@dataclass(frozen=True)
class BaselinePlan:
    """tls.baseline with its defaults applied: each rule's action, None when ignored."""

    key_size: BaselineAction | None = None
    min_rsa_bits: int = 2048
    min_ec_bits: int = 256
    signature: BaselineAction | None = None
    cipher: BaselineAction | None = None
    version: BaselineAction | None = None
    min_version: TlsVersion = TlsVersion.TLS1_2


def _active(action: BaselineAction) -> BaselineAction | None:
    return None if action is BaselineAction.IGNORE else action


def _baseline_plan(baseline: TlsBaseline | None) -> BaselinePlan | None:
    if baseline is None:
        return None
    key_size = baseline.key_size or KeySizeRule()
    version = baseline.version or VersionRule()
    return BaselinePlan(
        key_size=_active(key_size.action),
        min_rsa_bits=key_size.min_rsa_bits,
        min_ec_bits=key_size.min_ec_bits,
        signature=_active((baseline.signature or SignatureRule()).action),
        cipher=_active((baseline.cipher or CipherRule()).action),
        version=_active(version.action),
        min_version=version.minimum,
    )


@dataclass(frozen=True)
class RevocationPlan:
    """tls.revocation with its defaults: what a monitor without it gets too."""

    require_staple: bool = False
    query_responder: bool = False


@dataclass(frozen=True)
class TlsPlan:
    server_name: str
    # Verifies the chain, not the host name (probe/hostname.py does): see tls.build_contexts.
    trusting: ssl.SSLContext
    inspecting: ssl.SSLContext
    expiry_warning_seconds: float
    insecure: bool = False
    pin: PinPlan | None = None
    baseline: BaselinePlan | None = None
    # tls.clientCertificateEnforced: the context without a client certificate, and the alert.
    anonymous: ssl.SSLContext | None = None
    refusal_alert: RefusalAlert = RefusalAlert.ANY
    revocation: RevocationPlan = RevocationPlan()
    # Why no stapled OCSP response is asked for (see probe/stapling.py); None when it is.
    stapling_problem: str | None = None

    @property
    def handshake_context(self) -> ssl.SSLContext:
        return self.inspecting if self.insecure else self.trusting


@dataclass(frozen=True, slots=True)
class ProbePlan:
    host: str
    port: int
    family: int
    ip_literal: bool
    timeout: float
    payload: bytes | None = field(default=None, repr=False)
    # Read from a Secret (spec.sendFrom): results show its size, never its bytes.
    payload_secret: bool = False
    # The Secret bytes this probe sends: hidden in everything shown of what comes back.
    redactor: Redactor = field(default=NO_SECRETS, repr=False)
    data_checks: tuple[DataCheck, ...] = ()
    time_checks: tuple[TimeCheck, ...] = ()
    degraded_after: float | None = None
    max_response_time: float | None = None
    tls: TlsPlan | None = None
    retries: int = 0
    # How long the probe with all its re-tries may take (the interval); None: unbounded.
    budget: float | None = None
    read_cap: int = field(default=READ_CAP)
    protocol: Protocol | None = None
    # TLS is started inside the dialog (tls.startTLS or a startTLS step), not on connect.
    start_tls: bool = False
    steps: tuple[PlannedStep, ...] = ()
    expect_unreachable: bool = False
    # Asked before every connection (the target policy); None: any address (the CLI).
    guard: TargetGuard | None = None

    @property
    def dialog(self) -> bool:
        return self.protocol is not None or bool(self.steps)

    @property
    def upgrades_in_dialog(self) -> bool:
        return self.start_tls or any(step.start_tls for step in self.steps)


def _payload(spec: TcpMonitorSpec, material: ProbeMaterial, required: bool) -> bytes | None:
    if spec.send is not None:
        return spec.send.encode("utf-8")
    if spec.send_base64 is not None:
        try:
            return base64.b64decode("".join(spec.send_base64.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PlanError("spec.sendBase64", f"is not valid base64: {exc}") from None
    if spec.send_from is not None:
        if material.payload is None and required:
            ref = spec.send_from.secret_key_ref
            raise PlanError(
                "spec.sendFrom.secretKeyRef",
                secret_unavailable(ref.name, ref.key),
                Reason.REFERENCE_NOT_FOUND.value,
            )
        return material.payload
    return None


def _tls_plan(spec: TcpMonitorSpec, material: ProbeMaterial, required: bool) -> TlsPlan | None:
    tls = spec.tls
    if tls is None or not tls.enabled:
        return None
    if (tls.ca_secret_ref or tls.ca_config_map_ref) and material.ca_pem is None and required:
        raise PlanError("spec.tls", "the referenced CA bundle was not provided")
    if tls.client_cert_secret_ref and material.client_certificate is None and required:
        raise PlanError("spec.tls.clientCertSecretRef", "the client certificate was not provided")
    try:
        baseline = _baseline_plan(tls.baseline)
        contexts = build_contexts(
            tls.min_version,
            material.ca_pem,
            material.client_certificate,
            # Only with the cipher rule on: the probe then offers what the server might pick.
            wide_ciphers=baseline is not None and baseline.cipher is not None,
        )
        enforced = tls.client_certificate_enforced
        anonymous = None
        if enforced is not None:
            anonymous = build_contexts(tls.min_version, material.ca_pem, None).inspecting
    except TlsSetupError as exc:
        where = "spec.tls.clientCertSecretRef" if "client" in str(exc) else "spec.tls"
        raise PlanError(where, str(exc)) from None
    return TlsPlan(
        server_name=(tls.server_name or spec.host).rstrip("."),
        trusting=contexts.trusting,
        inspecting=contexts.inspecting,
        expiry_warning_seconds=parse_duration(tls.expiry_warning),
        insecure=tls.insecure_skip_verify,
        pin=_pin_plan(tls.pin),
        baseline=baseline,
        anonymous=anonymous,
        refusal_alert=enforced.alert if enforced is not None else RefusalAlert.ANY,
        revocation=RevocationPlan(
            require_staple=tls.revocation is not None and tls.revocation.require_staple,
            query_responder=tls.revocation is not None and tls.revocation.query_responder,
        ),
        stapling_problem=contexts.stapling_problem,
    )


def _steps(spec: TcpMonitorSpec) -> tuple[PlannedStep, ...]:
    planned = []
    for index, step in enumerate(spec.steps):
        send: bytes | None = None
        if step.send is not None:
            send = step.send.encode("utf-8")
        elif step.send_base64 is not None:
            try:
                send = base64.b64decode("".join(step.send_base64.split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise PlanError(
                    f"spec.steps[{index}].sendBase64", f"is not valid base64: {exc}"
                ) from None
        pattern = None
        if step.expect is not None:
            try:
                pattern = compile_regex(step.expect)
            except RegexError as exc:
                raise PlanError(f"spec.steps[{index}].expect", str(exc)) from None
        planned.append(PlannedStep(send, pattern, step.expect, bool(step.start_tls)))
    return tuple(planned)


def _ip_literal_family(host: str, family: int) -> bool:
    """Whether ``host`` is an IP literal; refuse one that contradicts ``ipFamily``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    literal_family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    if family not in (socket.AF_UNSPEC, literal_family):
        raise PlanError("spec.ipFamily", f"host {host} is an IPv{address.version} address")
    return True


def compile_plan(
    spec: TcpMonitorSpec, material: ProbeMaterial | None = None, *, require_material: bool = True
) -> ProbePlan:
    """Everything the engine needs; raises :class:`PlanError` for an unusable spec.

    ``require_material=False`` is for offline validation, which cannot see the cluster's
    Secrets: what is provided is still checked, what is missing is not an error.
    """
    material = material or ProbeMaterial()
    try:
        data_checks, time_checks = compile_assertions(spec.assertions)
    except AssertionCompileError as exc:
        raise PlanError(f"spec.assertions[{exc.index}].target", str(exc)) from None
    family = _FAMILIES[spec.ip_family]
    tls = _tls_plan(spec, material, require_material)
    steps = _steps(spec)
    start_tls = spec.tls is not None and spec.tls.start_tls
    if tls is None and (start_tls or any(step.start_tls for step in steps)):
        raise PlanError("spec.tls", "startTLS needs tls.enabled: true")
    payload = _payload(spec, material, require_material)
    # Only bytes that go on the wire can come back; the client key and a CA never do, and
    # steps (which cannot read a Secret) send only what the spec says.
    secret_payloads = [payload] if spec.send_from is not None and payload is not None else []
    return ProbePlan(
        host=spec.host,
        port=spec.port,
        family=family,
        ip_literal=_ip_literal_family(spec.host, family),
        timeout=spec.timeout_seconds,
        payload=payload,
        payload_secret=spec.send_from is not None,
        redactor=Redactor.of(secret_payloads),
        data_checks=data_checks,
        time_checks=time_checks,
        degraded_after=(
            parse_duration(spec.degraded_response_time) if spec.degraded_response_time else None
        ),
        max_response_time=(
            parse_duration(spec.max_response_time) if spec.max_response_time else None
        ),
        tls=tls,
        retries=spec.retries,
        budget=spec.interval_seconds,
        protocol=spec.protocol,
        start_tls=start_tls,
        steps=steps,
        expect_unreachable=spec.expect is Reachability.UNREACHABLE,
    )
