"""Reading TcpMonitor manifests from files, with one clear line per problem.

Shared by ``tcpmonitor validate``, ``tcpmonitor probe -f`` and ``tcpmonitor run -f``: every
problem names the file, the document and the field (``file:doc N: spec.port: ...``), because a
traceback or a bare "invalid" is useless in a repository of a hundred manifests.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .. import GROUP, KIND
from ..api import TcpMonitor
from ..api.maintenance import maintenance_problem
from ..api.policy import POLICY_KIND, TcpMonitorPolicy
from ..api.validation_messages import Problem, validation_problems
from ..probe import PlanError, compile_plan
from ..probe.material import ReferenceMap, ReferenceStore, resolve_material
from .bounded_yaml import LIMITS, DocumentRefused, FileRefused, Limits, load_documents, read_bounded

_Model = TypeVar("_Model", bound=BaseModel)

YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class LoadedMonitor:
    monitor: TcpMonitor
    file: str
    doc: int


@dataclass
class ManifestSet(ReferenceMap):
    """TcpMonitors, and the Secrets and ConfigMaps beside them that references may name."""

    monitors: list[LoadedMonitor] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Target policies and Namespace labels (``--policy`` files; see policy/).
    policies: list[TcpMonitorPolicy] = field(default_factory=list)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)


def _documents(path: Path, limits: Limits) -> Iterator[tuple[int, Any] | tuple[int, Problem]]:
    """(doc number, object) for each YAML document; a refused file or document ends the file."""
    try:
        data = read_bounded(path, limits.max_bytes)
        data.decode("utf-8")  # for the message; the parser reads the bytes
    except FileRefused as exc:
        yield 0, Problem(str(path), 0, "", exc.message)
        return
    except UnicodeDecodeError as exc:
        yield 0, Problem(str(path), 0, "", f"cannot read: {exc}")
        return
    try:
        yield from load_documents(data, limits)
    except DocumentRefused as exc:
        yield exc.doc, Problem(str(path), exc.doc, "", exc.message)


def manifest_files(path: Path) -> tuple[list[Path], list[Problem]]:
    """The YAML files under a directory (or the path itself), each file once (a mounted
    ConfigMap links ``m.yaml`` to ``..data/m.yaml``). Links to files are read; links to
    directories are not followed, so no loop and no ``ln -s / root`` can make the walk
    endless or read files from anywhere on the machine."""
    if not path.is_dir():
        return [path], []
    files: dict[tuple[int, int], Path] = {}
    problems: list[Problem] = []
    walked: set[tuple[int, int]] = set()
    pending = [path]
    while pending:
        directory = pending.pop()
        try:
            info = directory.stat()
            if (info.st_dev, info.st_ino) in walked:
                continue
            walked.add((info.st_dev, info.st_ino))
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(str(directory), 0, "", f"cannot read: {exc.strerror}"))
            continue
        for entry in entries:
            child = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(child)
                    continue
                if entry.is_symlink() and entry.is_dir():
                    continue
                if child.suffix not in YAML_SUFFIXES:
                    continue
                target = entry.stat()
                files.setdefault((target.st_dev, target.st_ino), child)
            except OSError:  # a dangling link: reading it says why
                files.setdefault((-1, len(files)), child)
    return sorted(files.values()), problems


def _name(key: object) -> str:
    shown = str(key)
    return shown if len(shown) <= 64 else shown[:61] + "..."


def _objects(item: Any, file: str, doc: int, problems: list[Problem]) -> list[tuple[str, Any]]:
    """(field path, object) for a document, or for each item of a ``kind: List`` (what
    ``kubectl get -o yaml`` prints)."""
    if not (isinstance(item, dict) and item.get("kind") == "List"):
        return [("", item)]
    items = item.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        problems.append(Problem(file, doc, "items", "must be a list"))
        return []
    out: list[tuple[str, Any]] = []
    for i, inner in enumerate(items):
        if isinstance(inner, dict) and inner.get("kind") == "List":
            problems.append(Problem(file, doc, f"items[{i}]", "a List inside a List"))
        else:
            out.append((f"items[{i}]", inner))
    return out


# The largest valid TcpMonitor (16 assertions, TLS, 16 locations), with kubectl's
# managedFields and a status, is well under a thousand YAML values. Past this, pydantic would
# report each extra value as one error: 400,000 errors take a gigabyte, from a 1 MB file.
MAX_MONITOR_VALUES = 10_000
# After this many problems in one document, one line says how many more there are.
MAX_PROBLEMS_PER_DOCUMENT = 20


def _more_values_than(obj: Any, limit: int) -> bool:
    """Whether ``obj`` holds more than ``limit`` values, counting each use of a shared one."""
    count = 0
    pending = [obj]
    while pending:
        value = pending.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS_PER_DOCUMENT:
        return problems
    first = problems[0]
    more = len(problems) - MAX_PROBLEMS_PER_DOCUMENT
    return [
        *problems[:MAX_PROBLEMS_PER_DOCUMENT],
        Problem(first.file, first.doc, "", f"{more} more problem(s) in this document"),
    ]


def _is_tcpmonitor(obj: dict[Any, Any]) -> bool:
    api_version = obj.get("apiVersion", "")
    return obj.get("kind") == KIND or (
        isinstance(api_version, str) and api_version.split("/", maxsplit=1)[0] == GROUP
    )


def _string_map(obj: dict[Any, Any], name: str, add: Callable[[str, str], None]) -> dict[str, Any]:
    """``obj[name]`` when it is a mapping of strings to strings; the rest are problems."""
    value = obj.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        add(name, "must be a mapping")
        return {}
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            add(name, f"keys must be strings (got {_name(k)})")
        elif not isinstance(v, str):
            add(f"{name}.{_name(k)}", "must be a string")
        else:
            out[k] = v
    return out


def _collect_data(obj: dict[Any, Any], ms: ManifestSet, file: str, doc: int, at: str) -> None:
    problems: list[Problem] = []
    try:
        _collect_data_into(obj, ms, problems, file, doc, at)
    finally:
        ms.problems.extend(_capped(problems))


def _collect_data_into(
    obj: dict[Any, Any], ms: ManifestSet, problems: list[Problem], file: str, doc: int, at: str
) -> None:
    def add(field: str, message: str) -> None:
        problems.append(Problem(file, doc, f"{at}.{field}" if at else field, message))

    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        add("metadata", "must be a mapping")
        return
    name, namespace = meta.get("name") or "", meta.get("namespace") or "default"
    if not isinstance(name, str) or not isinstance(namespace, str):
        add("metadata", "name and namespace must be strings")
        return
    key = (namespace, name)
    if obj.get("kind") == "ConfigMap":
        ms.config_maps[key] = _string_map(obj, "data", add)
        return
    data: dict[str, bytes] = {}
    for k, v in _string_map(obj, "data", add).items():
        try:
            data[k] = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            add(f"data.{_name(k)}", "is not valid base64")
    for k, v in _string_map(obj, "stringData", add).items():
        data[k] = v.encode()
    ms.secrets[key] = data


def _validated(
    model: type[_Model], obj: dict[Any, Any], ms: ManifestSet, file: str, doc: int
) -> _Model | None:
    """``obj`` as ``model``, or None with its problems recorded: the value count is bounded
    before pydantic sees it, and the messages are capped per document."""
    if _more_values_than(obj, MAX_MONITOR_VALUES):
        # The class names are the kinds (TcpMonitor, TcpMonitorPolicy).
        message = f"more than {MAX_MONITOR_VALUES} values: larger than any valid {model.__name__}"
        ms.problems.append(Problem(file, doc, "", message))
        return None
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        ms.problems.extend(_capped(validation_problems(exc, file, doc)))
        return None


def _collect_policy(obj: dict[Any, Any], ms: ManifestSet, file: str, doc: int) -> None:
    policy = _validated(TcpMonitorPolicy, obj, ms, file, doc)
    if policy is None:
        return
    if any(p.metadata.name == policy.metadata.name for p in ms.policies):
        ms.problems.append(Problem(file, doc, "metadata.name", "duplicate TcpMonitorPolicy"))
        return
    ms.policies.append(policy)


def _collect_namespace(obj: dict[Any, Any], ms: ManifestSet, file: str, doc: int, at: str) -> None:
    problems: list[Problem] = []

    def add(field: str, message: str) -> None:
        problems.append(Problem(file, doc, f"{at}.{field}" if at else field, message))

    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        add("metadata.name", "must be a string")
    else:
        labels = _string_map(meta, "labels", add)
        ms.namespace_labels[meta["name"]] = labels
    ms.problems.extend(_capped(problems))


def load_manifests(paths: list[Path], *, deep: bool = True, limits: Limits = LIMITS) -> ManifestSet:
    """Every TcpMonitor in ``paths`` that passes the API server's rules, and a problem line for
    every one that does not. With ``deep``, also the rules only a probe would hit (regexes,
    base64, TLS material present in the same set). Files over ``limits`` are problems too."""
    ms = ManifestSet()
    seen: dict[tuple[str, str], str] = {}
    pending: list[tuple[dict[str, Any], str, int]] = []
    for root in paths:
        if not root.exists() and not root.is_symlink():
            ms.problems.append(Problem(str(root), 0, "", "no such file or directory"))
            continue
        files, problems = manifest_files(root)
        ms.problems.extend(problems)
        for path in files:
            file = str(path)
            for doc, item in _documents(path, limits):
                if isinstance(item, Problem):
                    ms.problems.append(item)
                    continue
                for at, obj in _objects(item, file, doc, ms.problems):
                    if obj is None:
                        continue
                    if not isinstance(obj, dict):
                        ms.problems.append(Problem(file, doc, at, "not a YAML mapping"))
                    elif obj.get("kind") == POLICY_KIND:
                        _collect_policy(obj, ms, file, doc)
                    elif obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
                        _collect_namespace(obj, ms, file, doc, at)
                    elif _is_tcpmonitor(obj):
                        pending.append((obj, file, doc))
                    elif (
                        obj.get("kind") in ("Secret", "ConfigMap") and obj.get("apiVersion") == "v1"
                    ):
                        _collect_data(obj, ms, file, doc, at)
    for obj, file, doc in pending:
        monitor = _validated(TcpMonitor, obj, ms, file, doc)
        if monitor is None:
            continue
        where = f"{file}:doc {doc}"
        if monitor.key in seen:
            ms.problems.append(
                Problem(file, doc, "metadata.name", f"duplicate of {seen[monitor.key]}")
            )
            continue
        seen[monitor.key] = where
        if deep:
            problem = deep_problem(monitor, ms, file, doc)
            if problem is not None:
                ms.problems.append(problem)
                continue
        ms.monitors.append(LoadedMonitor(monitor, file, doc))
    return ms


def deep_problem(monitor: TcpMonitor, store: ReferenceStore, file: str, doc: int) -> Problem | None:
    """What compiling the probe finds; references not in the set are left to the cluster."""
    window = maintenance_problem(monitor.spec.maintenance)
    if window is not None:
        return Problem(file, doc, *window)
    try:
        material = resolve_material(monitor.spec, monitor.metadata.namespace, store, lenient=True)
        compile_plan(monitor.spec, material, require_material=False)
    except PlanError as exc:
        return Problem(file, doc, exc.field, exc.message)
    return None
