"""The target policy of ``tcpmonitor run --policy`` and ``tcpmonitor probe --policy``: the
TcpMonitorPolicy (and Namespace) documents of those files, in a PolicyBook like the operator's."""

from __future__ import annotations

import sys
from pathlib import Path

from ..policy import PolicyBook
from .manifests import ManifestSet, load_manifests


def read_policy_files(paths: list[Path]) -> ManifestSet | None:
    """Policies and namespace labels from ``paths``; None (problems printed) when any is bad."""
    found = load_manifests(paths, deep=False)
    for problem in found.problems:
        print(f"tcpmonitor: {problem}", file=sys.stderr)
    return None if found.problems else found


def fill_book(book: PolicyBook, found: ManifestSet) -> None:
    book.replace_policies(found.policies)
    for namespace, labels in found.namespace_labels.items():
        book.put_namespace(namespace, labels)


def policy_book(
    paths: list[Path], *, deny_uncovered: bool, allowed: list[str] | None = None
) -> PolicyBook | None:
    found = read_policy_files(paths)
    if found is None:
        return None
    book = PolicyBook(deny_uncovered=deny_uncovered, allowed=allowed or [])
    fill_book(book, found)
    return book
