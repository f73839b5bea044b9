"""Target policy decisions, pure: which address a namespace may connect to, and why not."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tcpmonitor.api.policy import TcpMonitorPolicy
from tcpmonitor.policy import PolicyBook, compile_policies


def policy(name: str, **spec: Any) -> TcpMonitorPolicy:
    return TcpMonitorPolicy.model_validate(
        {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitorPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def decide(
    policies: list[TcpMonitorPolicy],
    address: str,
    port: int = 443,
    host: str = "target.example",
    labels: dict[str, str] | None = None,
    **options: Any,
) -> tuple[bool, str, bool]:
    d = compile_policies(policies, **options).decide(
        labels or {}, host, ipaddress.ip_address(address), port
    )
    return d.allowed, d.rule, d.record_responses


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("169.254.169.254", "builtin/link-local"),
        ("::ffff:169.254.169.254", "builtin/link-local"),  # IPv4-mapped: the same address
        ("fe80::1", "builtin/link-local"),
        ("fd00:ec2::254", "builtin/cloud-metadata"),
        ("100.100.100.200", "builtin/cloud-metadata"),
        ("127.0.0.1", "builtin/loopback"),
        ("127.8.9.10", "builtin/loopback"),
        ("::1", "builtin/loopback"),
        ("0.0.0.0", "builtin/loopback"),
        ("::ffff:127.0.0.1", "builtin/loopback"),
    ],
)
def test_builtin_refusals_hold_without_any_policy(address: str, rule: str) -> None:
    assert decide([], address) == (False, rule, True)


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.1", "2001:db8::1", "8.8.8.8"])
def test_ordinary_addresses_are_allowed_without_a_policy(address: str) -> None:
    assert decide([], address)[0] is True


def test_builtin_refusals_can_be_switched_off_for_the_cli() -> None:
    assert decide([], "127.0.0.1", builtin=False) == (True, "default", True)


def test_an_allow_with_cidrs_lifts_a_builtin_refusal_but_hosts_alone_do_not() -> None:
    by_cidr = policy("p", rules=[{"name": "lo", "action": "Allow", "cidrs": ["127.0.0.0/8"]}])
    by_name = policy("p", rules=[{"name": "svc", "action": "Allow", "hosts": ["*.svc"]}])
    assert decide([by_cidr], "127.0.0.1") == (True, "p/lo", True)
    # A headless Service can make a name resolve to the metadata address: a name is no proof.
    assert decide([by_name], "169.254.169.254", host="evil.team.svc") == (
        False,
        "builtin/link-local",
        True,
    )
    assert decide([by_name], "10.1.2.3", host="db.team.svc") == (True, "p/svc", True)


def test_first_matching_rule_wins_within_a_policy() -> None:
    p = policy(
        "p",
        rules=[
            {"name": "api", "action": "Deny", "cidrs": ["10.96.0.1/32"]},
            {"name": "cluster", "action": "Allow", "cidrs": ["10.0.0.0/8"]},
        ],
        defaultAction="Deny",
    )
    assert decide([p], "10.96.0.1") == (False, "p/api", True)
    assert decide([p], "10.96.0.2") == (True, "p/cluster", True)
    assert decide([p], "192.0.2.1") == (False, "p/defaultAction", True)


def test_a_deny_in_any_covering_policy_wins_over_an_allow_in_another() -> None:
    allow = policy("a-allow", rules=[{"name": "all", "action": "Allow", "cidrs": ["0.0.0.0/0"]}])
    deny = policy("z-deny", rules=[{"name": "nodes", "action": "Deny", "cidrs": ["192.0.2.0/24"]}])
    assert decide([allow, deny], "192.0.2.7") == (False, "z-deny/nodes", True)
    assert decide([allow, deny], "198.51.100.7") == (True, "a-allow/all", True)


def test_ports_and_host_patterns_narrow_a_rule() -> None:
    p = policy(
        "p",
        rules=[
            {
                "name": "db",
                "action": "Allow",
                "ports": ["5432", "6000-6010"],
                "hosts": ["*.db.example", "exact.example"],
            }
        ],
        defaultAction="Deny",
    )
    assert decide([p], "10.0.0.1", 5432, "pg.db.example")[0] is True
    assert decide([p], "10.0.0.1", 6010, "A.B.DB.EXAMPLE.")[0] is True  # case, trailing dot
    assert decide([p], "10.0.0.1", 6011, "pg.db.example")[0] is False
    assert decide([p], "10.0.0.1", 5432, "db.example")[0] is False  # "*.x" is below x only
    assert decide([p], "10.0.0.1", 5432, "exact.example")[0] is True
    assert decide([p], "10.0.0.1", 5432, "notexact.example")[0] is False


def test_record_responses_false_on_any_matching_allow_withholds() -> None:
    open_ = policy("a", rules=[{"name": "all", "action": "Allow", "cidrs": ["10.0.0.0/8"]}])
    quiet = policy(
        "b",
        rules=[{"name": "q", "action": "Allow", "cidrs": ["10.0.0.0/8"], "recordResponses": False}],
    )
    assert decide([open_, quiet], "10.1.1.1") == (True, "a/all", False)


RESTRICTED = "restricted"
SELECTED = {"team": "a", "tier": RESTRICTED}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({"matchLabels": {"team": "a"}}, True),
        ({"matchLabels": {"team": "b"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["restricted"]}]}, True),
        (
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["restricted"]}]},
            False,
        ),
        ({"matchExpressions": [{"key": "gone", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
        ({}, True),
    ],
)
def test_namespace_selectors(selector: dict[str, Any], selected: bool) -> None:
    p = policy("p", namespaceSelector=selector, defaultAction="Deny")
    allowed = decide([p], "10.0.0.1", labels=SELECTED)[0]
    assert allowed is not selected


def test_uncovered_namespaces_follow_the_process_default() -> None:
    p = policy("team-a", namespaceSelector={"matchLabels": {"team": "a"}})
    assert decide([p], "10.0.0.1", labels={"team": "b"}) == (True, "default", True)
    assert decide([p], "10.0.0.1", labels={"team": "b"}, deny_uncovered=True) == (
        False,
        "default (no policy covers the namespace)",
        True,
    )
    assert decide([p], "10.0.0.1", labels={"team": "a"}, deny_uncovered=True)[0] is True


def test_limits_take_the_tightest_of_the_covering_policies() -> None:
    a = policy("a", limits={"maxMonitors": 10, "minInterval": "30s", "maxConcurrentProbes": 8})
    b = policy("b", limits={"maxMonitors": 50, "minInterval": "1m"})
    c = policy("c", namespaceSelector={"matchLabels": {"x": "y"}}, limits={"maxMonitors": 1})
    limits = compile_policies([a, b, c]).limits({})
    assert (limits.max_monitors, limits.min_interval, limits.max_concurrent_probes) == (10, 60, 8)
    assert compile_policies([]).limits({}).max_monitors is None


def test_the_book_applies_changes_and_knows_namespace_labels() -> None:
    book = PolicyBook()
    guard = book.guard("team-a")
    ten = ipaddress.ip_address("10.0.0.1")
    assert guard.check("h", ten, 80).allowed
    heard: list[int] = []
    book.on_change(lambda: heard.append(1))
    book.put_policy(
        policy("p", namespaceSelector={"matchLabels": {"team": "a"}}, defaultAction="Deny")
    )
    # Not seen yet: the namespace is judged by the name label the API server gives every one.
    assert guard.check("h", ten, 80).allowed
    book.put_namespace("team-a", {"team": "a"})
    assert not guard.check("h", ten, 80).allowed  # the same guard: no plan recompiled
    book.drop_policy("p")
    assert guard.check("h", ten, 80).allowed
    assert heard == [1, 1, 1]


def test_the_name_label_selects_namespaces_before_they_are_seen() -> None:
    book = PolicyBook()
    book.put_policy(
        policy(
            "p",
            namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "new"}},
            defaultAction="Deny",
        )
    )
    assert not book.decide("new", "h", ipaddress.ip_address("10.0.0.1"), 80).allowed
    assert book.decide("other", "h", ipaddress.ip_address("10.0.0.1"), 80).allowed


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"cidrs": ["10.0.0.0/33"]}, "not an address range"),
        ({"cidrs": ["example.com"]}, "not an address range"),
        ({"ports": ["0"]}, "within 1-65535"),
        ({"ports": ["70000"]}, "within 1-65535"),
        ({"ports": ["90-80"]}, "within 1-65535"),
        ({"hosts": ["a.*.example"]}, "should match pattern"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        policy("p", rules=[{"name": "r", "action": "Allow", **rule}])


def test_the_installations_allow_list_lifts_builtin_refusals_but_not_a_policy_deny() -> None:
    deny = policy("p", rules=[{"name": "no", "action": "Deny", "cidrs": ["127.0.0.2/32"]}])
    allowed = ["127.0.0.0/8"]
    assert decide([], "127.0.0.1", allowed=allowed) == (True, "--allow-target", True)
    assert decide([deny], "127.0.0.2", allowed=allowed) == (False, "p/no", True)
    assert decide([], "169.254.169.254", allowed=allowed)[0] is False
