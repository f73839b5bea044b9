"""What a monitor's author learns about a Secret it references: nothing it may not read."""

from __future__ import annotations

from typing import Any

import pytest

from tcpmonitor.api import TcpMonitorSpec
from tcpmonitor.probe import PlanError
from tcpmonitor.probe.material import ReferenceMap, resolve_material
from tcpmonitor.reporting.problems import plan_problem

NS = "team-a"
REFS: dict[str, dict[str, Any]] = {
    "sendFrom": {"sendFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    "caSecretRef": {
        "tls": {"enabled": True, "caSecretRef": {"name": "db", "key": "password"}},
    },
}


def spec(ref: str) -> TcpMonitorSpec:
    return TcpMonitorSpec.model_validate({"host": "h", "port": 1, **REFS[ref]})


def failure(ref: str, store: ReferenceMap) -> PlanError:
    with pytest.raises(PlanError) as caught:
        resolve_material(spec(ref), NS, store)
    return caught.value


def stores() -> dict[str, ReferenceMap]:
    return {
        "missing Secret": ReferenceMap(),
        "missing key": ReferenceMap(secrets={(NS, "db"): {"user": b"admin"}}),
        "forbidden": ReferenceMap(
            unreadable={(NS, "db"): 'Secret team-a/db: 403 Forbidden: secrets "db" is forbidden'}
        ),
        # Another namespace's Secret of that name is never looked at.
        "elsewhere": ReferenceMap(secrets={("team-b", "db"): {"password": b"x"}}),
    }


@pytest.mark.parametrize("ref", REFS)
def test_missing_secret_missing_key_and_forbidden_read_say_the_same(ref: str) -> None:
    failures = {why: failure(ref, store) for why, store in stores().items()}
    assert {str(f) for f in failures.values()} == {
        f'{failures["forbidden"].field}: Secret "db" key "password": not found or not readable'
    }
    assert {why: f.reason for why, f in failures.items()} == {
        "missing Secret": "ReferenceNotFound",
        "missing key": "ReferenceNotFound",
        # The API refused the operator: the same whether or not the Secret exists.
        "forbidden": "ReferenceUnreadable",
        "elsewhere": "ReferenceNotFound",
    }


def test_what_the_api_said_is_kept_for_the_log_only() -> None:
    forbidden = failure("sendFrom", stores()["forbidden"])
    problem = plan_problem(forbidden)
    assert "403" not in problem.message and "403" in problem.logged
    missing = plan_problem(failure("sendFrom", stores()["missing Secret"]))
    assert missing.logged == missing.message


def test_a_client_certificate_secret_without_its_key_says_the_same() -> None:
    s = TcpMonitorSpec.model_validate(
        {"host": "h", "port": 1, "tls": {"enabled": True, "clientCertSecretRef": {"name": "id"}}}
    )
    for store in (ReferenceMap(), ReferenceMap(secrets={(NS, "id"): {"tls.key": b"k"}})):
        with pytest.raises(PlanError) as caught:
            resolve_material(s, NS, store)
        assert caught.value.message == 'Secret "id" key "tls.crt": not found or not readable'
