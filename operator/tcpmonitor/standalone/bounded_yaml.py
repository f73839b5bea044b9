"""YAML documents from a file, refused before they can cost more than a bounded amount.

A manifest file is untrusted: in ``tcpmonitor run -f DIR`` any tenant who can write to the
directory chooses its content, and one bad file must not stall or exhaust the process that
probes everybody else's monitors. So a file is read only when it is a regular file under a
size bound (never a FIFO or a device, which would block or never end), and every document is
first walked as a stream of parser events, which costs memory in proportion to its nesting
only. That walk refuses deep nesting, alias cycles, too many anchors or aliases, and too many
nodes once aliases are expanded: PyYAML shares one object for every use of an alias, so a
billion-laughs document constructs cheaply and explodes later, in whatever walks the tree (the
List flattening, pydantic, ``repr``). Only a document that passes is composed and constructed,
with libyaml when PyYAML has it (several times faster than the pure-Python parser).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml import events

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one file may cost. A file over any limit is refused after reading at most
    ``max_bytes + 1`` bytes and walking its events, in a few megabytes. A file just under
    every limit costs what one document takes to compose (libyaml's nodes are about 350 bytes
    each) and what its objects take once built: 150 to 250 MB for ``tcpmonitor validate``."""

    # 10,000 monitors with assertions and TLS are 4.4 MB; 32 MiB leaves room for comments,
    # kubectl's managedFields and status, and Secrets, yet is read and checked in a second or
    # two. Bigger files are refused by their size before a byte is read.
    max_bytes: int = 32 * MIB
    # The nodes of every document once aliases are expanded: what bounds a billion-laughs
    # file and a too-wide one alike. 10,000 monitors with assertions and TLS are 630,000.
    max_nodes: int = 1_000_000
    # One document is composed whole before it is built, so it bounds the memory of a load:
    # 200,000 nodes are about 70 MB. A kubectl List of up to about 3,000 monitors fits in one
    # document; more monitors go in several documents (---) or files.
    max_document_nodes: int = 200_000
    # A TcpMonitor is 5 levels deep, a kubectl List of them 8; libyaml itself stops at 1000.
    max_depth: int = 64
    # A file of 10,000 monitors may use one alias (and one anchor) per monitor.
    max_anchors: int = 10_000
    max_aliases: int = 10_000
    max_documents: int = 100_000


LIMITS = Limits()

# libyaml's parser and composer, with the pure-Python constructor; the pure-Python loader
# only when PyYAML was built without libyaml.
FAST_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


class FileRefused(Exception):
    """The file cannot be read as a manifest at all (its kind, its size, an OS error)."""

    def __init__(self, reason: str, *, os_error: bool = False) -> None:
        self.reason = reason
        self.message = f"cannot read: {reason}" if os_error else reason
        super().__init__(self.message)


class DocumentRefused(Exception):
    """Document ``doc`` (from 1) is not usable YAML or is over a limit; the file ends there."""

    def __init__(self, doc: int, message: str) -> None:
        super().__init__(f"doc {doc}: {message}")
        self.doc = doc
        self.message = message


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(mode: int, size: int, max_bytes: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
        raise FileRefused(f"not a regular file ({kind})")
    if size > max_bytes:
        raise FileRefused(_too_large(max_bytes))


def _too_large(max_bytes: int) -> str:
    return f"larger than {max_bytes // MIB} MiB, the limit for one file"


def read_bounded(path: Path, max_bytes: int = LIMITS.max_bytes) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    Checked with stat before opening (opening a device can have effects of its own), opened
    non-blocking (a FIFO swapped in meanwhile does not wait for a writer) and checked again
    with fstat on what was actually opened; at most ``max_bytes + 1`` bytes are read, in case
    the file grows while it is read."""
    try:
        before = os.stat(path)
        _check_regular(before.st_mode, before.st_size, max_bytes)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileRefused(exc.strerror or str(exc), os_error=True) from None
    try:
        opened = os.fstat(fd)
        _check_regular(opened.st_mode, opened.st_size, max_bytes)
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, MIB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise FileRefused(exc.strerror or str(exc), os_error=True) from None
    finally:
        os.close(fd)
    if left <= 0:
        raise FileRefused(_too_large(max_bytes))
    return b"".join(chunks)


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if problem == "second occurrence":  # of an anchor; the context names it
        problem = str(getattr(exc, "context", "")).split(";")[0]
    return f"YAML error{where}: {problem}"


class _Refusal(Exception):
    def __init__(self, event: events.Event, message: str) -> None:
        mark = event.start_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        super().__init__(f"YAML error{where}: {message}")


class _EventBudget:
    """Checks the parser's events of one file, one at a time, keeping only the open
    collections and the expanded size and height of each anchor (not the nodes)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.documents = 0
        self.nodes = 0  # every document so far, aliases expanded
        self.document_start = 0  # self.nodes when this document started
        self.anchor_count = 0
        self.alias_count = 0
        # Per open collection: its anchor, the node count when it opened, the deepest level
        # reached inside it.
        self.open: list[tuple[str | None, int, int]] = []
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height)

    def next_document(self, parser: Any) -> bool:
        """Check the next document's events; False at the end of the stream."""
        while True:
            kind = self.check(parser.get_event())
            if kind is events.DocumentEndEvent:
                return True
            if kind is events.StreamEndEvent:
                return False

    def check(self, event: Any) -> type[events.Event]:
        kind = type(event)
        if kind is events.ScalarEvent:
            self._add(event, 1, 1)
            self._anchor(event, 1, 1)
        elif kind is events.SequenceStartEvent or kind is events.MappingStartEvent:
            self._add(event, 1, 1)
            if event.anchor is not None:
                self._count_anchor(event)
            self.open.append((event.anchor, self.nodes - 1, len(self.open) + 1))
        elif kind is events.SequenceEndEvent or kind is events.MappingEndEvent:
            anchor, start, deepest = self.open.pop()
            height = deepest - len(self.open)
            if self.open:
                parent_anchor, parent_start, parent_deepest = self.open[-1]
                self.open[-1] = (parent_anchor, parent_start, max(parent_deepest, deepest))
            if anchor is not None:
                self.anchors[anchor] = (self.nodes - start, height)
        elif kind is events.AliasEvent:
            self._alias(event)
        elif kind is events.DocumentStartEvent:
            self.documents += 1
            self.document_start = self.nodes
            self.anchors.clear()
            if self.documents > self.limits.max_documents:
                raise _Refusal(event, f"more than {self.limits.max_documents} documents")
        return kind

    def _add(self, event: events.Event, nodes: int, height: int) -> None:
        self.nodes += nodes
        if self.nodes > self.limits.max_nodes:
            raise _Refusal(
                event, f"more than {self.limits.max_nodes} YAML nodes once aliases are expanded"
            )
        if self.nodes - self.document_start > self.limits.max_document_nodes:
            raise _Refusal(
                event,
                f"more than {self.limits.max_document_nodes} YAML nodes in one document once "
                "aliases are expanded: split it into several documents",
            )
        depth = len(self.open) + height
        if depth > self.limits.max_depth:
            raise _Refusal(event, f"nested deeper than {self.limits.max_depth} levels")
        if self.open and depth > self.open[-1][2]:
            anchor, start, _ = self.open[-1]
            self.open[-1] = (anchor, start, depth)

    def _count_anchor(self, event: events.NodeEvent) -> None:
        if event.anchor in self.anchors or any(a == event.anchor for a, _, _ in self.open):
            raise _Refusal(event, f"anchor &{event.anchor} is defined twice")
        self.anchor_count += 1
        if self.anchor_count > self.limits.max_anchors:
            raise _Refusal(event, f"more than {self.limits.max_anchors} anchors")

    def _anchor(self, event: events.NodeEvent, nodes: int, height: int) -> None:
        if event.anchor is not None:
            self._count_anchor(event)
            self.anchors[event.anchor] = (nodes, height)

    def _alias(self, event: events.AliasEvent) -> None:
        self.alias_count += 1
        if self.alias_count > self.limits.max_aliases:
            raise _Refusal(event, f"more than {self.limits.max_aliases} aliases")
        name = event.anchor
        if name is None:  # pragma: no cover - the parser always names an alias
            raise _Refusal(event, "alias without a name")
        if name not in self.anchors:
            if any(anchor == name for anchor, _, _ in self.open):
                raise _Refusal(event, f"alias *{name} refers to a node that contains it")
            raise _Refusal(event, f"alias *{name} refers to no anchor before it")
        nodes, height = self.anchors[name]
        self._add(event, nodes, height)


class _CheckedSafeLoader(yaml.SafeLoader):
    """The pure-Python loader, every event checked as the composer takes it: one parse."""

    budget: _EventBudget

    def get_event(self) -> Any:
        event = super().get_event()  # type: ignore[no-untyped-call]  # unannotated in stubs
        self.budget.check(event)
        return event


def load_documents(
    data: bytes, limits: Limits = LIMITS, loader: Any = FAST_LOADER
) -> Iterator[tuple[int, Any]]:
    """(document number from 1, object) for each YAML document of ``data``; raises
    DocumentRefused for the first document that is not YAML or is over a limit.

    libyaml composes a whole document in C, out of reach of a check per event, so two of its
    parsers walk the same bytes in step: the first checks a document's events, then the
    second composes and constructs it (the first pass costs a third of the load). The
    pure-Python composer is checked event by event as it goes."""
    budget = _EventBudget(limits)
    parsers: list[Any] = []
    doc = 1
    try:
        if loader is yaml.SafeLoader:
            checked = _CheckedSafeLoader(data)
            checked.budget = budget
            parsers = [checked]
            while checked.check_node():
                yield doc, checked.construct_document(checked.get_node())
                doc += 1
            return
        parsers = [loader(data), loader(data)]
        scanner, composer = parsers
        while budget.next_document(scanner) and composer.check_node():
            obj = composer.construct_document(composer.get_node())
            yield doc, obj
            doc += 1
    except _Refusal as exc:
        raise DocumentRefused(doc, str(exc)) from None
    except yaml.YAMLError as exc:
        raise DocumentRefused(doc, _yaml_message(exc)) from None
    except ValueError as exc:  # int() of more than 4300 digits, a date out of range
        raise DocumentRefused(doc, f"YAML error: {str(exc).split(';')[0]}") from None
    finally:
        for parser in parsers:
            parser.dispose()
