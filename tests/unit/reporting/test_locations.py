"""A location's entry from the record, the result that speaks for the monitor, the status size."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tcpmonitor.api import (
    AssertionSource,
    Comparison,
    Condition,
    LocationStatus,
    MonitorState,
    ProbeResult,
    Problem,
    TcpMonitorStatus,
    Timings,
    Verdict,
)
from tcpmonitor.api.result import (
    MAX_CHAIN,
    MAX_DISTINGUISHED_NAME,
    MAX_DNS_NAME,
    MAX_DNS_NAMES,
    MAX_EXCERPT,
    MAX_MESSAGE,
    MAX_PROTOCOL_DETAIL,
    MAX_STEP_OUTCOMES,
    AssertionOutcome,
    Certificate,
    ChainCertificate,
    ProtocolInfo,
    RequestSummary,
    ResponseSummary,
    RevocationInfo,
    RevocationSource,
    RevocationStatus,
    StepOutcome,
    TlsInfo,
)
from tcpmonitor.api.status import LOCATION_DNS_NAMES, LOCATION_TEXT
from tcpmonitor.reporting import SpecProblem, build_status, status_body
from tcpmonitor.reporting.kept_result import keep
from tcpmonitor.reporting.locations import deciding_result, location_entry
from tcpmonitor.reporting.record import MonitorRecord

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

# The bound a status must stay under, whatever the targets send: a sixteenth of etcd's 1.5 MiB
# request limit. The object also carries its spec, metadata and managedFields (one field
# manager per location), and every write sends the whole object to every watcher (the
# controller, each runner): a status that is a large share of the limit is a cost long before
# it is a refusal.
STATUS_BOUND = 256 * 1024


def full_result(
    state: Verdict = Verdict.DOWN, at: datetime = NOW, total: float = 3.5
) -> ProbeResult:
    """A result with every target-influenced string at its schema maximum."""
    return ProbeResult(
        state=state,
        started_at=at,
        remote_address="[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        timings=Timings(dns=1.25, connect=2.5, tls=30.125, data=4.5, total=total),
        error=Problem(code="ASSERTION_FAILED", message="e" * MAX_MESSAGE),
        warnings=[Problem(code="TLS_CERTIFICATE_EXPIRING", message="w" * MAX_MESSAGE)] * 8,
        request=RequestSummary(bytes=4096, excerpt="q" * MAX_EXCERPT),
        response=ResponseSummary(bytes=65536, excerpt="\\x00" * (MAX_EXCERPT // 4)),
        assertions=[
            AssertionOutcome(
                source=AssertionSource.RESPONSE_DATA,
                comparison=Comparison.MATCHES,
                target="t" * 1024,
                actual="a" * MAX_EXCERPT,
                passed=False,
            )
        ]
        * 16,
        tls=TlsInfo(
            version="TLSv1.3",
            cipher="c" * 128,
            verified=False,
            verify_error="v" * MAX_MESSAGE,
            chain_trusted=False,
            chain_error="c" * MAX_MESSAGE,
            hostname_verified=False,
            hostname_error="h" * MAX_MESSAGE,
            client_certificate_enforced=True,
            refusal_alert="a" * 64,
            certificate=Certificate(
                subject="s" * MAX_DISTINGUISHED_NAME,
                issuer="i" * MAX_DISTINGUISHED_NAME,
                dns_names=["n" * MAX_DNS_NAME] * MAX_DNS_NAMES,
                not_before=NOW - timedelta(days=90),
                not_after=NOW + timedelta(days=3),
                days_remaining=3.0,
                sha256_fingerprint=":".join(["AB"] * 32),
            ),
            chain=[
                ChainCertificate(
                    subject="s" * MAX_DISTINGUISHED_NAME,
                    issuer="i" * MAX_DISTINGUISHED_NAME,
                    not_before=NOW - timedelta(days=900),
                    not_after=NOW + timedelta(days=1),
                    sha256_fingerprint=":".join(["CD"] * 32),
                    key_type="RSA",
                    key_size=4096,
                    spki_sha256="p" * 44,
                    signature_algorithm="sha256WithRSAEncryption",
                )
            ]
            * MAX_CHAIN,
            chain_length=1024,
            chain_expiry=NOW + timedelta(days=1),
            chain_expiry_subject="s" * MAX_DISTINGUISHED_NAME,
            revocation=RevocationInfo(
                status=RevocationStatus.REVOKED,
                source=RevocationSource.RESPONDER,
                this_update=NOW - timedelta(hours=1),
                next_update=NOW + timedelta(days=1),
                revoked_at=NOW - timedelta(days=2),
                reason="r" * 32,
                message="m" * MAX_MESSAGE,
            ),
        ),
        protocol=ProtocolInfo(name="PostgreSQL", detail="p" * MAX_PROTOCOL_DETAIL),
        steps=[StepOutcome(time=9999.125, passed=True)] * MAX_STEP_OUTCOMES,
    )


def record(result: ProbeResult | None, state: MonitorState = MonitorState.DOWN) -> MonitorRecord:
    return MonitorRecord(
        state=state,
        consecutive_failures=3,
        kept_result=keep(result) if result else None,
        last_probe_time=result.started_at if result else None,
        last_transition_time=NOW,
    )


def test_a_location_entry_carries_the_full_result_from_the_record() -> None:
    result = full_result()
    entry = location_entry(record(result), None, "eu-west", "runner-7")
    assert (entry.name, entry.state, entry.runner) == ("eu-west", MonitorState.DOWN, "runner-7")
    assert (entry.error_code, entry.total_ms, entry.consecutive_failures) == (
        "ASSERTION_FAILED",
        3.5,
        3,
    )
    assert entry.message is not None and entry.message.startswith("ASSERTION_FAILED")
    copy = entry.last_result
    assert copy is not None and copy.location == "eu-west"
    assert copy.remote_address == result.remote_address and copy.timings == result.timings
    assert copy.request == result.request and copy.response == result.response
    assert copy.tls is not None and copy.tls.certificate is not None
    assert copy.tls.certificate.not_after == NOW + timedelta(days=3)
    # The chain's certificates stay in lastResult; the entry keeps when and where it fails.
    assert copy.tls.chain == [] and len(result.tls.chain) == MAX_CHAIN  # type: ignore[union-attr]
    assert (copy.tls.chain_length, copy.tls.chain_expiry) == (1024, NOW + timedelta(days=1))
    assert copy.tls.chain_expiry_subject is not None
    assert len(copy.tls.chain_expiry_subject) <= LOCATION_TEXT
    assert copy.tls.revocation is not None and copy.tls.revocation.reason == "r" * 32
    for reason in (copy.tls.chain_error, copy.tls.hostname_error, copy.tls.revocation.message):
        assert reason is not None and len(reason) <= LOCATION_TEXT
    assert (copy.tls.chain_trusted, copy.tls.hostname_verified) == (False, False)
    assert [a.passed for a in copy.assertions] == [False] * 16
    assert copy.protocol == result.protocol and copy.steps == result.steps
    # The spec has the target and the response excerpt shows what was seen.
    assert all(a.target is None and a.actual is None for a in copy.assertions)
    assert copy.error is not None and len(copy.error.message) <= LOCATION_TEXT
    names = copy.tls.certificate.dns_names
    assert len(names) == LOCATION_DNS_NAMES and names[-1] == f"... {MAX_DNS_NAMES - 3} more"
    # Written, read back (a handover) and written again: the same entry.
    again = location_entry(record(copy), None, "eu-west", "runner-7")
    assert again.last_result == copy


def test_a_location_entry_without_a_result_says_why() -> None:
    problem = SpecProblem("ReferenceNotFound", "spec.sendFrom: Secret s not found")
    entry = location_entry(record(None, MonitorState.UNKNOWN), problem, "eu", "r")
    assert entry.last_result is None and entry.state is MonitorState.UNKNOWN
    assert entry.message == "ReferenceNotFound: spec.sendFrom: Secret s not found"


def located(name: str, state: MonitorState, result: ProbeResult) -> LocationStatus:
    return location_entry(record(result, state), None, name, "r")


def test_the_worst_location_speaks_for_the_monitor_and_is_named() -> None:
    up = full_result(Verdict.UP, NOW + timedelta(seconds=5))
    down = full_result(Verdict.DOWN, NOW)
    entries = [
        located("eu", MonitorState.UP, up),
        located("us", MonitorState.DOWN, down),
        located("ap", MonitorState.DEGRADED, full_result(Verdict.DEGRADED, NOW)),
    ]
    chosen = deciding_result(["eu", "us", "ap"], entries)
    assert chosen is not None and chosen.location == "us" and chosen.state is Verdict.DOWN


def test_the_location_state_counts_not_one_failed_probe_below_the_threshold() -> None:
    # us had one failed probe but its failureThreshold keeps it Up; eu is Degraded.
    entries = [
        located("us", MonitorState.UP, full_result(Verdict.DOWN, NOW + timedelta(seconds=9))),
        located("eu", MonitorState.DEGRADED, full_result(Verdict.DEGRADED, NOW)),
    ]
    chosen = deciding_result(["eu", "us"], entries)
    assert chosen is not None and chosen.location == "eu"


def test_among_equal_states_the_most_recent_result_speaks() -> None:
    entries = [
        located("eu", MonitorState.UP, full_result(Verdict.UP, NOW, total=1.0)),
        located("us", MonitorState.UP, full_result(Verdict.UP, NOW + timedelta(seconds=3))),
        located("ap", MonitorState.UP, full_result(Verdict.UP, NOW + timedelta(seconds=1))),
    ]
    chosen = deciding_result(["eu", "us", "ap"], entries)
    assert chosen is not None and chosen.location == "us"


def test_locations_no_longer_wanted_do_not_speak() -> None:
    entries = [located("old", MonitorState.DOWN, full_result(Verdict.DOWN, NOW))]
    assert deciding_result(["eu"], entries) is None


def test_a_status_with_sixteen_maximal_locations_stays_small() -> None:
    names = [f"location-{i:02d}-" + "x" * 48 for i in range(16)]
    entries = [located(n, MonitorState.DOWN, full_result()) for n in names]
    result = deciding_result(names, entries)
    conditions = [
        Condition(
            type=t,
            status="False",
            last_transition_time=NOW,
            reason="R" * 64,
            message="m" * MAX_MESSAGE,
        )
        for t in ("Ready", "Reachable", "Degraded", "LocationsAvailable")
    ]
    top = build_status(record(full_result()), None, 1, conditions, NOW)
    status = top.model_copy(update={"last_result": result, "locations": entries})
    body = {
        "status": {
            **status_body(status),
            "locations": [e.model_dump(mode="json", by_alias=True) for e in entries],
        }
    }
    size = len(json.dumps(body, separators=(",", ":")))
    one = len(json.dumps(entries[0].model_dump(mode="json", by_alias=True)))
    # Every field kept, it would be 17 full results of about 44 KB each: 750 KB.
    full = len(json.dumps(full_result().to_json_dict()))
    assert size < STATUS_BOUND, (
        f"status of 16 maximal locations is {size} bytes ({one} per location; a full result "
        f"is {full}), over the bound of {STATUS_BOUND}"
    )
    print(f"status of 16 maximal locations: {size} bytes, {one} per location, full result {full}")
    # The status validates against the models that generate the CRD (every maxLength holds).
    TcpMonitorStatus.model_validate(body["status"])
