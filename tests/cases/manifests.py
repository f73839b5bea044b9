"""One table of TcpMonitor manifests: what the API server accepts, and what it refuses.

The unit tests run ``tcpmonitor validate`` over it; the e2e tests ``kubectl apply`` the same
objects to a real kube-apiserver. Both must agree, so offline validation can be trusted.
``message`` is a fragment expected in both the validator's line and the API server's error.
``deep`` cases pass the API server but fail the checks only a probe would hit. ``api_field`` is
where the API server reports the error when that differs from ``field``: a rule that fails to
evaluate (a regex CEL cannot compile, checked by a rule on the spec) is reported at its object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    valid: bool
    field: str = ""
    message: str = ""
    deep: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    api_field: str = ""

    def manifest(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitor",
            "metadata": {"name": self.name, "namespace": namespace},
            "spec": self.spec,
            **self.extra,
        }


BASE = {"host": "db.example.com", "port": 5432}


def spec(**overrides: Any) -> dict[str, Any]:
    out = {**BASE, **overrides}
    return {k: v for k, v in out.items() if v is not None}


def data_assertion(comparison: str, target: str) -> dict[str, Any]:
    return spec(assertions=[{"source": "ResponseData", "comparison": comparison, "target": target}])


def bad_regex(name: str, comparison: str, target: str, message: str) -> Case:
    return Case(
        name,
        data_assertion(comparison, target),
        False,
        "spec.assertions[0].target",
        message,
        api_field="spec",
    )


RE2_REFUSED = "not a valid RE2 regular expression"


CASES: list[Case] = [
    Case("minimal", spec(), True),
    Case("ipv4-literal", spec(host="10.0.0.1"), True),
    Case("ipv6-literal", spec(host="2001:db8::1"), True),
    Case("trailing-dot", spec(host="db.example.com."), True),
    Case("days-interval", spec(interval="1d", timeout="30s"), True),
    Case("shortest-interval-and-timeout", spec(interval="1s", timeout="10ms"), True),
    Case("compound-durations", spec(interval="1m30s", timeout="1.5s"), True),
    Case(
        "full",
        spec(
            interval="30s",
            timeout="5s",
            ipFamily="IPv4",
            send="PING\r\n",
            assertions=[
                {"source": "ResponseData", "comparison": "Contains", "target": "PONG"},
                {"source": "ResponseData", "comparison": "Matches", "target": "^\\+PONG"},
                {"source": "ResponseData", "comparison": "NotEmpty"},
                {"source": "ResponseTime", "comparison": "LessThan", "target": "500ms"},
            ],
            degradedResponseTime="200ms",
            maxResponseTime="2s",
            tls={
                "enabled": True,
                "serverName": "redis.example.com",
                "minVersion": "TLS1.3",
                "caSecretRef": {"name": "redis-ca", "key": "ca.crt"},
                "clientCertSecretRef": {"name": "redis-client"},
                "expiryWarning": "30d",
            },
            retries=2,
            failureThreshold=3,
            successThreshold=2,
        ),
        True,
    ),
    Case(
        "tls-pin",
        spec(
            tls={
                "enabled": True,
                "insecureSkipVerify": True,
                "pin": {
                    "sha256Fingerprints": ["ab" * 32, ":".join(["CD"] * 32)],
                    "spkiSha256": ["sha256//" + "A" * 43 + "=", "b" * 43 + "="],
                    "scope": "Chain",
                    "issuer": "CN=R11,O=Let's Encrypt,C=US",
                },
            }
        ),
        True,
    ),
    Case(
        "tls-baseline",
        spec(
            tls={
                "enabled": True,
                "baseline": {
                    "keySize": {"action": "Fail", "minRsaBits": 3072, "minEcBits": 384},
                    "signature": {"action": "Fail"},
                    "cipher": {"action": "Ignore"},
                    "version": {"minimum": "TLS1.3"},
                },
                "clientCertificateEnforced": {"alert": "certificate_required"},
            }
        ),
        True,
    ),
    Case(
        "tls-baseline-bad-action",
        spec(tls={"enabled": True, "baseline": {"cipher": {"action": "Warn"}}}),
        False,
        "spec.tls.baseline.cipher.action",
        "Warn",
    ),
    Case(
        "send-from-secret", spec(sendFrom={"secretKeyRef": {"name": "p", "key": "payload"}}), True
    ),
    Case("base64-payload", spec(sendBase64="AAEC/w=="), True),
    Case("paused", spec(paused=True), True),
    Case("two-locations", spec(locations=["eu-west", "us-east"], minFailedLocations=2), True),
    # RE2 takes these in linear time; a backtracking engine can take exponential time.
    Case("regex-nested-repeat", data_assertion("Matches", "(a+)+$"), True),
    Case("regex-flags-and-classes", data_assertion("Matches", r"(?i)^220 [\w.-]+ ESMTP"), True),
    Case("regex-named-group", data_assertion("NotMatches", r"(?P<code>5\d\d) "), True),
    Case("regex-quoted", data_assertion("Matches", r"\Q(a)\1\E"), True),
    Case("contains-is-not-a-regex", data_assertion("Contains", "(?=x"), True),
    # Refused by the schema.
    Case("port-zero", spec(port=0), False, "spec.port", "0"),
    Case("port-too-big", spec(port=70000), False, "spec.port", "65535"),
    Case("missing-host", spec(host=None), False, "spec.host", "Required value"),
    Case("missing-port", spec(port=None), False, "spec.port", "Required value"),
    Case("bad-duration", spec(interval="5 minutes"), False, "spec.interval", "5 minutes"),
    Case("days-compound", spec(interval="1d12h"), False, "spec.interval", "1d12h"),
    Case("bad-host", spec(host="db_1.example.com"), False, "spec.host", "db_1.example.com"),
    Case("unknown-field", spec(hots="x"), False, "spec.hots", "unknown field"),
    Case("bad-ip-family", spec(ipFamily="IPv5"), False, "spec.ipFamily", "IPv5"),
    Case("retries-too-many", spec(retries=4), False, "spec.retries", "3"),
    Case("threshold-zero", spec(failureThreshold=0), False, "spec.failureThreshold", "1"),
    Case("bad-min-version", spec(tls={"minVersion": "SSL3"}), False, "spec.tls.minVersion", "SSL3"),
    Case(
        "bad-secret-name",
        spec(sendFrom={"secretKeyRef": {"name": "Bad_Name", "key": "k"}}),
        False,
        "spec.sendFrom.secretKeyRef.name",
        "Bad_Name",
    ),
    Case(
        "too-many-assertions",
        spec(assertions=[{"source": "ResponseData", "comparison": "NotEmpty"}] * 17),
        False,
        "spec.assertions",
        "16",
    ),
    Case("send-too-long", spec(send="x" * 4097), False, "spec.send", "4096"),
    Case("bad-location-name", spec(locations=["EU_West"]), False, "spec.locations[0]", "EU_West"),
    Case("no-locations", spec(locations=[]), False, "spec.locations", "1"),
    Case(
        "duplicate-location",
        spec(locations=["eu", "eu"]),
        False,
        "spec.locations",
        "Duplicate value",
    ),
    # Refused by the CEL rules.
    Case(
        "quorum-over-locations",
        spec(locations=["eu", "us"], minFailedLocations=3),
        False,
        "spec.minFailedLocations",
        "minFailedLocations exceeds the number of locations",
    ),
    Case(
        "timeout-over-interval",
        spec(interval="10s", timeout="20s"),
        False,
        "spec.timeout",
        "timeout (20s) must not exceed interval (10s)",
    ),
    Case(
        "timeout-over-default-interval",
        spec(timeout="2m"),
        False,
        "spec.timeout",
        "timeout (2m) must not exceed interval (60s)",
    ),
    Case(
        "timeout-days-over-interval",
        spec(interval="1h", timeout="1d"),
        False,
        "spec.timeout",
        "must not exceed interval",
    ),
    Case(
        "interval-zero",
        spec(interval="0s", timeout="0s"),
        False,
        "spec.interval",
        "interval (0s) must be at least 1s",
    ),
    Case(
        "interval-one-millisecond",
        spec(interval="1ms", timeout="1ms"),
        False,
        "spec.interval",
        "interval (1ms) must be at least 1s",
    ),
    Case(
        "interval-just-below-one-second",
        spec(interval="999ms", timeout="500ms"),
        False,
        "spec.interval",
        "interval (999ms) must be at least 1s",
    ),
    Case(
        "timeout-zero",
        spec(interval="10s", timeout="0s"),
        False,
        "spec.timeout",
        "timeout (0s) must be at least 10ms",
    ),
    Case(
        "timeout-below-ten-milliseconds",
        spec(interval="10s", timeout="9.5ms"),
        False,
        "spec.timeout",
        "timeout (9.5ms) must be at least 10ms",
    ),
    Case(
        "send-and-base64",
        spec(send="a", sendBase64="YQ=="),
        False,
        "spec",
        "set at most one of send, sendBase64 and sendFrom",
    ),
    Case(
        "degraded-not-below-max",
        spec(degradedResponseTime="2s", maxResponseTime="1s"),
        False,
        "spec.degradedResponseTime",
        "must be less than maxResponseTime",
    ),
    Case(
        "bad-ipv6",
        spec(host="2001:db8::zz"),
        False,
        "spec.host",
        "2001:db8::zz",
    ),
    Case(
        "ipv4-mapped-ipv6",
        spec(host="::ffff:10.0.0.1"),
        False,
        "spec.host",
        "is neither a DNS name nor an IP address",
    ),
    Case(
        "two-ca-sources",
        spec(
            tls={
                "enabled": True,
                "caSecretRef": {"name": "a", "key": "k"},
                "caConfigMapRef": {"name": "b", "key": "k"},
            }
        ),
        False,
        "spec.tls",
        "set at most one of caSecretRef and caConfigMapRef",
    ),
    Case(
        "tls-pin-empty",
        spec(tls={"enabled": True, "pin": {"scope": "Chain"}}),
        False,
        "spec.tls.pin",
        "a pin needs sha256Fingerprints, spkiSha256 or issuer",
    ),
    Case(
        "tls-pin-bad-fingerprint",
        spec(tls={"enabled": True, "pin": {"sha256Fingerprints": ["AB:CD"]}}),
        False,
        "spec.tls.pin.sha256Fingerprints[0]",
        "AB:CD",
    ),
    Case(
        "target-missing",
        spec(assertions=[{"source": "ResponseData", "comparison": "Contains"}]),
        False,
        "spec.assertions[0].target",
        "target is required for comparison Contains",
    ),
    Case(
        "time-with-contains",
        spec(assertions=[{"source": "ResponseTime", "comparison": "Contains", "target": "1s"}]),
        False,
        "spec.assertions[0].comparison",
        "ResponseTime assertions compare with",
    ),
    Case(
        "data-with-less-than",
        spec(assertions=[{"source": "ResponseData", "comparison": "LessThan", "target": "1"}]),
        False,
        "spec.assertions[0].comparison",
        "LessThan applies to ResponseTime only",
    ),
    Case(
        "time-target-not-duration",
        spec(assertions=[{"source": "ResponseTime", "comparison": "LessThan", "target": "fast"}]),
        False,
        "spec.assertions[0].target",
        "ResponseTime target must be a duration",
    ),
    # Refused by CEL's matches() failing to compile the pattern: Go's regexp is RE2 syntax.
    bad_regex("regex-does-not-compile", "Matches", "(unclosed", RE2_REFUSED),
    bad_regex("regex-lookahead", "Matches", "(?=x)", RE2_REFUSED),
    bad_regex("regex-lookbehind", "NotMatches", "(?<!a)b", RE2_REFUSED),
    bad_regex("regex-backreference", "Matches", r"(a)\1", RE2_REFUSED),
    bad_regex("regex-possessive", "Matches", "a*+", RE2_REFUSED),
    bad_regex("regex-any-byte", "Matches", r"x\C", RE2_REFUSED),
    # Protocols, STARTTLS, steps and expect (issue 12).
    Case("protocol-smtp", spec(protocol="SMTP", port=25), True),
    Case(
        "protocol-starttls",
        spec(protocol="PostgreSQL", tls={"enabled": True, "startTLS": True}),
        True,
    ),
    Case("protocol-implicit-tls", spec(protocol="Redis", tls={"enabled": True}), True),
    Case(
        "protocol-with-assertions",
        spec(protocol="SMTP", assertions=[{"source": "ResponseData", "comparison": "NotEmpty"}]),
        True,
    ),
    Case(
        "steps",
        spec(
            steps=[
                {"expect": "^220 "},
                {"send": "EHLO probe\r\n", "expect": "(?m)^250 "},
                {"send": "STARTTLS\r\n", "expect": "^220 ", "startTLS": True},
                {"sendBase64": "UVVJVA0K"},
            ],
            tls={"enabled": True},
        ),
        True,
    ),
    Case("expect-unreachable", spec(expect="Unreachable"), True),
    Case("expect-reachable", spec(expect="Reachable", protocol="SSH"), True),
    Case("protocol-unknown", spec(protocol="HTTP"), False, "spec.protocol", "HTTP"),
    Case("expect-unknown", spec(expect="Maybe"), False, "spec.expect", "Maybe"),
    Case(
        "starttls-for-ssh",
        spec(protocol="SSH", tls={"enabled": True, "startTLS": True}),
        False,
        "spec.tls.startTLS",
        "SSH has no STARTTLS: use tls without startTLS (implicit TLS)",
    ),
    Case(
        "tls-for-ssh",
        spec(protocol="SSH", tls={"enabled": True}),
        False,
        "spec.tls",
        "SSH encrypts by itself: remove tls",
    ),
    Case(
        "starttls-for-redis",
        spec(protocol="Redis", tls={"enabled": True, "startTLS": True}),
        False,
        "spec.tls.startTLS",
        "Redis has no STARTTLS",
    ),
    Case(
        "starttls-without-protocol",
        spec(tls={"enabled": True, "startTLS": True}),
        False,
        "spec.tls.startTLS",
        "tls.startTLS needs a protocol (steps upgrade with steps[].startTLS)",
    ),
    Case(
        "starttls-without-tls-enabled",
        spec(protocol="SMTP", tls={"startTLS": True}),
        False,
        "spec.tls",
        "startTLS needs tls.enabled: true",
    ),
    Case(
        "step-starttls-without-tls",
        spec(steps=[{"expect": "^220 ", "startTLS": True}]),
        False,
        "spec.tls",
        "startTLS needs tls.enabled: true",
    ),
    Case(
        "steps-with-send",
        spec(steps=[{"expect": "^220 "}], send="x"),
        False,
        "spec.steps",
        "steps replace send, sendBase64 and sendFrom",
    ),
    Case(
        "protocol-with-steps",
        spec(protocol="SMTP", steps=[{"expect": "^220 "}]),
        False,
        "spec.protocol",
        "set either protocol or steps",
    ),
    Case(
        "protocol-with-send",
        spec(protocol="Redis", send="PING\r\n"),
        False,
        "spec.protocol",
        "a protocol sends its own messages",
    ),
    Case(
        "unreachable-with-protocol",
        spec(expect="Unreachable", protocol="SSH"),
        False,
        "spec.expect",
        "expect: Unreachable only tries to connect",
    ),
    Case(
        "unreachable-with-assertions",
        spec(
            expect="Unreachable",
            assertions=[{"source": "ResponseData", "comparison": "NotEmpty"}],
        ),
        False,
        "spec.expect",
        "expect: Unreachable only tries to connect",
    ),
    Case(
        "step-sends-twice",
        spec(steps=[{"send": "a", "sendBase64": "YQ=="}]),
        False,
        "spec.steps[0]",
        "set at most one of send and sendBase64",
    ),
    Case("step-empty", spec(steps=[{}]), False, "spec.steps[0]", "a step needs send"),
    Case(
        "two-starttls-steps",
        spec(steps=[{"startTLS": True}, {"startTLS": True}], tls={"enabled": True}),
        False,
        "spec.steps",
        "at most one step may be startTLS",
    ),
    Case(
        "too-many-steps",
        spec(steps=[{"expect": "x"}] * 17),
        False,
        "spec.steps",
        "16",
    ),
    Case(
        "step-expect-not-re2",
        spec(steps=[{"expect": "(?=x)"}]),
        False,
        "spec.steps[0].expect",
        RE2_REFUSED,
        api_field="spec",
    ),
    Case(
        "step-send-too-long",
        spec(steps=[{"send": "x" * 4097}]),
        False,
        "spec.steps[0].send",
        "4096",
    ),
    # Accepted by the API server, refused by the deeper checks.
    Case(
        "regex-too-large",
        data_assertion("Matches", r"\pL{1000}"),
        False,
        "spec.assertions[0].target",
        "compiled RE2 program exceeds 1 MiB",
        deep=True,
    ),
    Case(
        "step-base64-does-not-decode",
        spec(steps=[{"sendBase64": "abc"}]),
        False,
        "spec.steps[0].sendBase64",
        "not valid base64",
        deep=True,
    ),
    Case(
        "base64-does-not-decode",
        spec(sendBase64="abc"),
        False,
        "spec.sendBase64",
        "not valid base64",
        deep=True,
    ),
    Case(
        "literal-against-family",
        spec(host="10.0.0.1", ipFamily="IPv6"),
        False,
        "spec.ipFamily",
        "is an IPv4 address",
        deep=True,
    ),
    # Maintenance windows (issue 16).
    Case(
        "maintenance-windows",
        spec(
            maintenance={
                "windows": [
                    {"schedule": "0 3 * * SUN", "duration": "2h", "timeZone": "Europe/Berlin"},
                    {"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T23:00:00Z"},
                ]
            }
        ),
        True,
    ),
    Case(
        "maintenance-schedule-without-duration",
        spec(maintenance={"windows": [{"schedule": "0 3 * * SUN"}]}),
        False,
        "spec.maintenance.windows[0]",
        "schedule and duration go together",
    ),
    Case(
        "maintenance-end-before-start",
        spec(
            maintenance={
                "windows": [{"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T19:00:00Z"}]
            }
        ),
        False,
        "spec.maintenance.windows[0].end",
        "end must be after start",
    ),
    Case(
        "maintenance-both-forms",
        spec(
            maintenance={
                "windows": [
                    {
                        "schedule": "0 3 * * SUN",
                        "duration": "2h",
                        "start": "2026-12-24T20:00:00Z",
                        "end": "2026-12-24T23:00:00Z",
                    }
                ]
            }
        ),
        False,
        "spec.maintenance.windows[0]",
        "a window is either recurring (schedule and duration) or one-off (start and end)",
    ),
    Case(
        "maintenance-cron-out-of-range",
        spec(maintenance={"windows": [{"schedule": "61 3 * * *", "duration": "1h"}]}),
        False,
        "spec.maintenance.windows[0].schedule",
        "invalid cron expression '61 3 * * *'",
        deep=True,
    ),
    Case(
        "maintenance-unknown-time-zone",
        spec(
            maintenance={
                "windows": [
                    {"schedule": "0 3 * * *", "duration": "1h", "timeZone": "Europe/Atlantis"}
                ]
            }
        ),
        False,
        "spec.maintenance.windows[0].timeZone",
        "unknown time zone 'Europe/Atlantis'",
        deep=True,
    ),
]

VALID = [c for c in CASES if c.valid]
INVALID = [c for c in CASES if not c.valid]
