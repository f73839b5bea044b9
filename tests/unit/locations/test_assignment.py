"""Rendezvous hashing: deterministic, balanced, and minimal movement on membership changes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from tcpmonitor.locations.assignment import Membership, live_members, owner

KEYS = [f"ns/monitor-{i}" for i in range(5000)]


def test_owner_is_deterministic_and_independent_of_member_order() -> None:
    assert owner("ns/a", ["r1", "r2", "r3"]) == owner("ns/a", ["r3", "r1", "r2"])
    assert owner("ns/a", []) is None


def test_monitors_are_balanced_across_runners() -> None:
    counts = Counter(owner(k, ["r1", "r2", "r3"]) for k in KEYS)
    assert all(abs(c - len(KEYS) / 3) < len(KEYS) * 0.05 for c in counts.values()), counts


def test_adding_a_runner_moves_about_one_in_n() -> None:
    before = {k: owner(k, ["r1", "r2", "r3"]) for k in KEYS}
    after = {k: owner(k, ["r1", "r2", "r3", "r4"]) for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == "r4" for k in moved)  # only to the newcomer
    assert abs(len(moved) / len(KEYS) - 0.25) < 0.03


def test_removing_a_runner_moves_only_its_monitors() -> None:
    before = {k: owner(k, ["r1", "r2", "r3"]) for k in KEYS}
    after = {k: owner(k, ["r1", "r3"]) for k in KEYS}
    assert {k for k in KEYS if before[k] != after[k]} == {k for k in KEYS if before[k] == "r2"}


def test_every_monitor_is_owned_by_a_member() -> None:
    members = ["r1", "r2", "r3"]
    assert {owner(k, members) for k in KEYS} == set(members)


def test_live_members_are_unexpired_leases_of_the_location() -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    d = timedelta(seconds=15)
    leases = [
        Membership("a", "eu", now - timedelta(seconds=5), d),
        Membership("b", "eu", now - timedelta(seconds=20), d),  # expired
        Membership("c", "us", now, d),
        Membership("d", "eu", now, d),
    ]
    assert live_members(leases, "eu", now) == ["a", "d"]
