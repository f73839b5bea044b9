"""The last result kept compact between probes: what is rebuilt from it is the result itself.

The results are real probes' (a connect, a refused port, a payload with assertions, TLS with
its certificate and chain, an expiring certificate) and one with every field at its maximum.
"""

from __future__ import annotations

import asyncio
import ssl
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import trustme
from prometheus_client import generate_latest

from tcpmonitor.api import MonitorState, ProbeResult, Problem, TcpMonitorStatus, Verdict
from tcpmonitor.probe import ProbeMaterial
from tcpmonitor.reporting import build_status, describe_result, expiring_event, status_body
from tcpmonitor.reporting.events import transition_event
from tcpmonitor.reporting.kept_result import keep, restore, warning_codes
from tcpmonitor.reporting.locations import location_entry, location_result
from tcpmonitor.reporting.record import MonitorRecord, advance, newly_expiring
from tcpmonitor.telemetry.metrics import Metrics

from ..conftest import ServerContextFactory, days_from_now
from ..probing import contains, probe
from ..servers import blocking_tls_server, closed_port, greet, serve
from .test_locations import full_result

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

Scenario = Callable[[trustme.CA, ServerContextFactory], ProbeResult]


def up(_: trustme.CA, __: ServerContextFactory) -> ProbeResult:
    async def scenario() -> ProbeResult:
        async with serve(greet(b"")) as port:
            return await probe(port)

    return asyncio.run(scenario())


def refused(_: trustme.CA, __: ServerContextFactory) -> ProbeResult:
    return asyncio.run(probe(closed_port()))


def assertions_failed(_: trustme.CA, __: ServerContextFactory) -> ProbeResult:
    async def scenario() -> ProbeResult:
        async with serve(greet(b"+PONG\r\n")) as port:
            return await probe(port, send="PING\r\n", assertions=[contains("-ERR")])

    return asyncio.run(scenario())


def tls(server: ssl.SSLContext, material: ProbeMaterial | None, **spec: object) -> ProbeResult:
    async def scenario() -> ProbeResult:
        with blocking_tls_server(server) as port:
            return await probe(port, material, host="localhost", **spec)

    return asyncio.run(scenario())


def tls_verified(ca: trustme.CA, server_context: ServerContextFactory) -> ProbeResult:
    material = ProbeMaterial(ca_pem=ca.cert_pem.bytes().decode())
    return tls(server_context(), material, tls={"enabled": True})


def tls_untrusted(_: trustme.CA, server_context: ServerContextFactory) -> ProbeResult:
    return tls(server_context(), None, tls={"enabled": True})


def tls_expiring(_: trustme.CA, server_context: ServerContextFactory) -> ProbeResult:
    server = server_context(not_after=days_from_now(3))
    return tls(server, None, tls={"enabled": True, "insecureSkipVerify": True})


def every_field(_: trustme.CA, __: ServerContextFactory) -> ProbeResult:
    return full_result(Verdict.DOWN, NOW, 12.5)


SCENARIOS = [up, refused, assertions_failed, tls_verified, tls_untrusted, tls_expiring, every_field]


@pytest.fixture(params=SCENARIOS, ids=lambda s: s.__name__)
def result(
    request: pytest.FixtureRequest, ca: trustme.CA, server_context: ServerContextFactory
) -> ProbeResult:
    made: ProbeResult = request.param(ca, server_context)
    return made


def test_the_scenarios_give_the_results_they_are_named_for(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    made = {s.__name__: s(ca, server_context) for s in SCENARIOS}
    assert made["up"].state is Verdict.UP and made["up"].error is None
    assert made["refused"].error is not None
    assert made["refused"].error.code == "CONNECTION_REFUSED"
    assert made["assertions_failed"].response is not None and made["assertions_failed"].assertions
    verified = made["tls_verified"].tls
    assert verified is not None and verified.verified and verified.certificate and verified.chain
    assert made["tls_untrusted"].error is not None
    assert made["tls_untrusted"].error.code == "TLS_UNTRUSTED_CERTIFICATE"
    assert "TLS_CERTIFICATE_EXPIRING" in {w.code for w in made["tls_expiring"].warnings}


def test_a_kept_result_is_rebuilt_equal_and_dumps_the_same(result: ProbeResult) -> None:
    rebuilt = restore(keep(result))
    assert rebuilt == result
    assert rebuilt.to_json_dict() == result.to_json_dict()
    assert rebuilt.model_dump() == result.model_dump()


def test_status_events_entry_and_metrics_from_the_record_are_the_results(
    result: ProbeResult,
) -> None:
    record, transition = advance(
        MonitorRecord(), result, failure_threshold=1, success_threshold=1, now=NOW
    )
    assert transition is not None
    status = build_status(record, None, 3, [], NOW)
    body = status_body(status)
    assert body["lastResult"] == result.to_json_dict()
    assert body["message"] == describe_result(result)[:1024]
    total = result.timings.total
    assert body["latency"] == (None if total is None else f"{total:.1f}ms")
    assert body["lastProbeTime"] == result.to_json_dict()["startedAt"]
    assert transition_event(transition, record.last_result) == transition_event(transition, result)
    if result.tls is not None:
        assert expiring_event(restore(keep(result))) == expiring_event(result)
    entry = location_entry(record, None, "eu", "runner-1")
    assert entry.last_result == location_result(result, "eu")
    assert entry.message == describe_result(result)[:1024]
    assert (_series(restore(keep(result))), _series(result)) == (_series(result),) * 2


def _series(result: ProbeResult) -> bytes:
    metrics = Metrics()
    metrics.observe(("shop", "web"), result, MonitorState(result.state.value))
    return b"\n".join(
        line for line in generate_latest(metrics.registry).splitlines() if b"_created" not in line
    )


def test_warning_codes_are_read_without_rebuilding(result: ProbeResult) -> None:
    assert warning_codes(keep(result)) == {w.code for w in result.warnings}
    assert warning_codes(None) == frozenset()


def test_an_expiring_certificate_is_new_only_against_a_kept_result_without_it(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    expiring = tls_expiring(ca, server_context)
    assert newly_expiring(keep(up(ca, server_context)), expiring)
    assert newly_expiring(None, expiring)
    assert not newly_expiring(keep(expiring), expiring)


def test_each_rebuilt_result_has_lists_of_its_own(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    kept = keep(up(ca, server_context))
    first, second = restore(kept), restore(kept)
    first.warnings.append(Problem(code="RESPONSE_TIME_DEGRADED", message="slow"))
    assert second.warnings == [] and restore(kept).warnings == []


def test_a_result_read_back_from_a_status_is_kept_and_rebuilt_equal(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    stored = TcpMonitorStatus.model_validate(
        {"state": "Up", "lastResult": tls_verified(ca, server_context).to_json_dict()}
    )
    record = MonitorRecord.from_status(stored)
    assert record.last_result == stored.last_result


def test_a_kept_up_result_takes_a_fraction_of_the_models_memory(
    ca: trustme.CA, server_context: ServerContextFactory
) -> None:
    # Ten thousand monitors keep one each: this is the runtime's largest per-monitor saving.
    result = up(ca, server_context)
    kept = keep(result)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        models = [restore(kept) for _ in range(200)]
        middle = tracemalloc.get_traced_memory()[0]
        compact = [keep(model) for model in models]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(compact) == len(models)
    assert (after - middle) * 4 < middle - before
