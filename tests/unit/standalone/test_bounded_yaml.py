"""Hostile YAML and hostile files are refused with one message, before they cost memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcpmonitor.standalone.bounded_yaml import (
    FAST_LOADER,
    LIMITS,
    DocumentRefused,
    FileRefused,
    Limits,
    load_documents,
    read_bounded,
)

LOADERS = pytest.mark.parametrize(
    "loader", [FAST_LOADER, yaml.SafeLoader], ids=["libyaml", "pure-python"]
)


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """Each anchor is ``width`` uses of the one before: width**levels scalars, in < 1 KB."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def documents(text: str, limits: Limits = LIMITS, loader: Any = FAST_LOADER) -> list[Any]:
    return [obj for _, obj in load_documents(text.encode(), limits, loader)]


def refusal(text: str, limits: Limits = LIMITS, loader: Any = FAST_LOADER) -> DocumentRefused:
    with pytest.raises(DocumentRefused) as caught:
        documents(text, limits, loader)
    assert "\n" not in caught.value.message
    return caught.value


def test_libyaml_is_the_loader_in_this_build() -> None:
    assert FAST_LOADER is yaml.CSafeLoader


@LOADERS
def test_billion_laughs_is_refused_by_its_expanded_size(loader: Any) -> None:
    text = billion_laughs()
    assert len(text) < 1024
    started = time.monotonic()
    refused = refusal(text, loader=loader)
    assert time.monotonic() - started < 2
    assert refused.doc == 1
    assert refused.message.endswith(
        "more than 200000 YAML nodes in one document once aliases are expanded: "
        "split it into several documents"
    )
    assert "more than 1000 YAML nodes once" in refusal(text, Limits(max_nodes=1000)).message
    assert refused.message.startswith("YAML error at line ")


@LOADERS
def test_the_expanded_size_counts_every_use_of_an_alias(loader: Any) -> None:
    # {a: [1, 2], b: *a}: the mapping, 2 keys, the list and its 2 items, and 3 again for b.
    text = "a: &x [1, 2]\nb: *x\n"
    assert documents(text, Limits(max_nodes=9), loader) == [{"a": [1, 2], "b": [1, 2]}]
    assert "more than 8 YAML nodes" in refusal(text, Limits(max_nodes=8), loader).message


@LOADERS
def test_the_expanded_size_is_counted_over_the_whole_file(loader: Any) -> None:
    text = "[1, 2]\n---\n[3, 4]\n"
    assert documents(text, Limits(max_nodes=6), loader) == [[1, 2], [3, 4]]
    assert refusal(text, Limits(max_nodes=5), loader).doc == 2


@LOADERS
def test_one_document_has_its_own_smaller_bound(loader: Any) -> None:
    text = "[1, 2]\n---\n[3, 4]\n---\n[5, 6, 7]\n"
    limits = Limits(max_document_nodes=3)
    refused = refusal(text, limits, loader)
    assert (refused.doc, refused.message) == (
        3,
        "YAML error at line 5: more than 3 YAML nodes in one document once aliases are "
        "expanded: split it into several documents",
    )


@LOADERS
@pytest.mark.parametrize(
    "text",
    [
        "- " * 20_000 + "x\n",  # block sequences
        "a: " + "[" * 20_000 + "]" * 20_000 + "\n",  # flow sequences
        "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x\n",  # mappings
    ],
    ids=["block", "flow", "mappings"],
)
def test_deep_nesting_is_refused_without_recursion(text: str, loader: Any) -> None:
    message = refusal(text, loader=loader).message
    # libyaml stops flow nesting at 1000 on its own, while scanning ahead.
    assert "nested deeper than 64 levels" in message or "maximum nesting depth" in message


@LOADERS
def test_an_alias_counts_with_the_depth_of_what_it_names(loader: Any) -> None:
    deep = "[" * 40 + "x" + "]" * 40
    assert len(documents(f"a: &d {deep}\n", loader=loader)) == 1
    message = refusal(f"a: &d {deep}\nb: {'[' * 30}*d{']' * 30}\n", loader=loader).message
    assert message == "YAML error at line 2: nested deeper than 64 levels"


@LOADERS
def test_an_alias_inside_its_own_anchor_is_refused(loader: Any) -> None:
    refused = refusal("apiVersion: v1\nkind: List\nitems: &items [*items]\n", loader=loader)
    assert refused.message == (
        "YAML error at line 3: alias *items refers to a node that contains it"
    )


@LOADERS
def test_anchors_aliases_and_documents_have_budgets(loader: Any) -> None:
    anchors = "".join(f"a{i}: &a{i} x\n" for i in range(4))
    assert "more than 3 anchors" in refusal(anchors, Limits(max_anchors=3), loader).message
    aliases = "a: &a x\n" + "".join(f"b{i}: *a\n" for i in range(4))
    assert "more than 3 aliases" in refusal(aliases, Limits(max_aliases=3), loader).message
    docs = "---\na: 1\n" * 4
    refused = refusal(docs, Limits(max_documents=3), loader)
    assert (refused.doc, refused.message) == (4, "YAML error at line 7: more than 3 documents")


@LOADERS
def test_undefined_and_duplicate_anchors_are_refused(loader: Any) -> None:
    assert refusal("a: *nowhere\n", loader=loader).message == (
        "YAML error at line 1: alias *nowhere refers to no anchor before it"
    )
    # libyaml: this loader's own words; pure Python: the composer's, which sees it first.
    assert refusal("a: &x 1\nb: &x 2\n", loader=loader).message in (
        "YAML error at line 2: anchor &x is defined twice",
        "YAML error at line 2: found duplicate anchor 'x'",
    )


@LOADERS
def test_anchors_belong_to_their_document(loader: Any) -> None:
    assert documents("a: &x 1\n---\nb: &x 2\n", loader=loader) == [{"a": 1}, {"b": 2}]
    assert refusal("a: &x 1\n---\nb: *x\n", loader=loader).doc == 2


@LOADERS
def test_documents_before_a_refused_one_are_kept(loader: Any) -> None:
    loaded: list[tuple[int, Any]] = []
    with pytest.raises(DocumentRefused) as caught:
        loaded.extend(load_documents(b"a: 1\n---\nb: [2\n", LIMITS, loader))
    assert loaded == [(1, {"a": 1})]
    assert caught.value.doc == 2
    assert caught.value.message.startswith("YAML error at line 4: ")


@LOADERS
def test_values_python_refuses_to_build_are_one_line(loader: Any) -> None:
    message = refusal("port: " + "9" * 5000 + "\n", loader=loader).message
    assert message.startswith("YAML error: Exceeds the limit (4300 digits)")
    assert "set_int_max_str_digits" not in message
    assert refusal("a: !!python/object:os.system x\n", loader=loader).message.startswith(
        "YAML error at line 1: could not determine a constructor"
    )


@LOADERS
def test_control_characters_are_a_yaml_error(loader: Any) -> None:
    assert "unacceptable character #x001f" in refusal("a: \x1f\n", loader=loader).message


def test_both_loaders_build_the_same_objects() -> None:
    text = "a: &x {b: [1, 2.5, true, null, '3']}\nd: *x\ne: {<<: *x, f: 1}\n---\n[x]\n"
    assert (
        documents(text) == documents(text, loader=yaml.SafeLoader) == list(yaml.safe_load_all(text))
    )


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    with pytest.raises(FileRefused, match=r"^not a regular file \(a FIFO\)$"):
        read_bounded(fifo)


def test_a_character_device_is_refused() -> None:
    with pytest.raises(FileRefused, match=r"^not a regular file \(a character device\)$"):
        read_bounded(Path("/dev/zero"))


def test_a_socket_and_a_directory_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(FileRefused, match=r"\(a socket\)"):
            read_bounded(path)
    with pytest.raises(FileRefused, match=r"\(a directory\)"):
        read_bounded(tmp_path)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:
        f.truncate(LIMITS.max_bytes + 1)  # sparse: no disk, no memory
    with pytest.raises(FileRefused, match=r"^larger than 32 MiB, the limit for one file$"):
        read_bounded(path)


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100) == b"x" * 100
    with pytest.raises(FileRefused):
        read_bounded(path, 99)


def test_a_file_that_grows_while_read_is_refused(tmp_path: Path) -> None:
    """What fstat said is not trusted: at most limit + 1 bytes are read."""
    path = tmp_path / "m.yaml"
    path.write_bytes(b"x" * 10)
    limit = 4 * 1024 * 1024
    stop = threading.Event()

    def grow() -> None:
        with path.open("ab") as f:
            while not stop.is_set() and f.tell() < 4 * limit:
                f.write(b"y" * 65536)
                f.flush()

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        data_or_refusal: Any
        try:
            data_or_refusal = read_bounded(path, limit)
        except FileRefused as exc:
            data_or_refusal = exc
    finally:
        stop.set()
        writer.join()
    if isinstance(data_or_refusal, bytes):
        assert len(data_or_refusal) <= limit
    else:
        assert "larger than" in data_or_refusal.message


def test_an_unreadable_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match=r"^cannot read: No such file or directory$"):
        read_bounded(tmp_path / "absent.yaml")


def test_the_readme_states_the_limits_in_force() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    stated = [
        f"at most {LIMITS.max_bytes // 1024 // 1024} MiB",
        f"at most {LIMITS.max_documents:,} documents",
        f"at most {LIMITS.max_depth} levels deep",
        f"at most {LIMITS.max_anchors:,} anchors and {LIMITS.max_aliases:,} aliases",
        f"at most {LIMITS.max_document_nodes:,} YAML nodes in one document and "
        f"{LIMITS.max_nodes:,} in a file",
    ]
    flat = " ".join(readme.split())
    for fact in stated:
        assert " ".join(fact.split()) in flat, fact


def test_without_libyaml_the_pure_python_loader_is_used(tmp_path: Path) -> None:
    """PyYAML built without libyaml has no CSafeLoader: the same limits, the slower parser."""
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    script = (
        "import sys, yaml\n"
        "del yaml.CSafeLoader\n"
        "from tcpmonitor.standalone.bounded_yaml import FAST_LOADER\n"
        "from tcpmonitor.standalone.manifests import load_manifests\n"
        "assert FAST_LOADER is yaml.SafeLoader, FAST_LOADER\n"
        "print(*load_manifests([__import__('pathlib').Path(sys.argv[1])]).problems)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(
        "once aliases are expanded: split it into several documents"
    )
