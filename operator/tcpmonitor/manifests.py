"""Reading TcpMonitor manifests from files, with one clear line per problem.

Shared by ``tcpmonitor validate``, ``tcpmonitor probe -f`` and ``tcpmonitor run -f``: every
problem names the file, the document and the field (``file:doc N: spec.port: ...``), because a
traceback or a bare "invalid" is useless in a repository of a hundred manifests.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from . import GROUP, KIND
from .api import TcpMonitor
from .api.durations import DURATION_PATTERN
from .api.spec import (
    BASE64_PATTERN,
    DATA_KEY_PATTERN,
    HOST_PATTERN,
    HOSTNAME_PATTERN,
    OBJECT_NAME_PATTERN,
)
from .probe import PlanError, compile_plan
from .references import ReferenceMap, ReferenceStore, resolve_material

YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one document."""

    file: str
    doc: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:doc {self.doc}" if self.doc else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


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


def _field_path(loc: tuple[int | str, ...], extra: str = "") -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out + extra


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "Required value",
}

# Pydantic would quote the regular expression; people need to be told the rule instead.
_PATTERN_MESSAGES = {
    DURATION_PATTERN: "invalid duration: use a number with ms, s, m or h (500ms, 10s, 1m30s, "
    "2h) or whole days alone (14d)",
    HOST_PATTERN: "must be a DNS name or an IP address (IPv6 without brackets)",
    OBJECT_NAME_PATTERN: "must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')",
    DATA_KEY_PATTERN: "may contain only letters, digits, '-', '_' and '.'",
    BASE64_PATTERN: "must be base64 (A-Z, a-z, 0-9, '+', '/', '=')",
    f"^{HOSTNAME_PATTERN}$": "must be a DNS name",
}


def _message(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        return _PATTERN_MESSAGES.get(pattern, f"does not match {pattern}")
    return str(_MESSAGES.get(error["type"], error["msg"]))


def validation_problems(exc: ValidationError, file: str, doc: int) -> list[Problem]:
    problems = []
    for error in exc.errors():
        ctx = error.get("ctx") or {}
        path = _field_path(error["loc"], str(ctx.get("field_path", "")))
        message = _message(error)
        if error["type"] not in ("missing", "cross_field_rule") and "input" in error:
            shown = repr(error["input"])
            if len(shown) <= 60 and not isinstance(error["input"], dict):
                message = f"{message} (got {shown})"
        problems.append(Problem(file, doc, path, message))
    return problems


def _documents(path: Path) -> Iterator[tuple[int, Any] | tuple[int, Problem]]:
    """(doc number, object) for each YAML document; a YAML error ends the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield 0, Problem(str(path), 0, "", f"cannot read: {exc}")
        return
    doc = 0
    try:
        for doc, obj in enumerate(yaml.safe_load_all(text), start=1):
            yield doc, obj
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        yield doc + 1, Problem(str(path), doc + 1, "", f"YAML error{where}: {problem}")


def manifest_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
    return [path]


def _flatten(obj: Any) -> list[Any]:
    """A ``kind: List`` (what ``kubectl get -o yaml`` prints) holds its objects in items."""
    if isinstance(obj, dict) and obj.get("kind") == "List" and isinstance(obj.get("items"), list):
        return [item for inner in obj["items"] for item in _flatten(inner)]
    return [obj]


def _is_tcpmonitor(obj: dict[str, Any]) -> bool:
    api_version = str(obj.get("apiVersion", ""))
    return obj.get("kind") == KIND or api_version.split("/", maxsplit=1)[0] == GROUP


def _collect_data(obj: dict[str, Any], ms: ManifestSet, file: str, doc: int) -> None:
    meta = obj.get("metadata") or {}
    key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
    if obj.get("kind") == "ConfigMap":
        ms.config_maps[key] = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        return
    data: dict[str, bytes] = {}
    for k, v in (obj.get("data") or {}).items():
        try:
            data[str(k)] = base64.b64decode(str(v), validate=True)
        except (binascii.Error, ValueError):
            ms.problems.append(Problem(file, doc, f"data.{k}", "is not valid base64"))
    for k, v in (obj.get("stringData") or {}).items():
        data[str(k)] = str(v).encode()
    ms.secrets[key] = data


def load_manifests(paths: list[Path], *, deep: bool = True) -> ManifestSet:
    """Every TcpMonitor in ``paths`` that passes the API server's rules, and a problem line for
    every one that does not. With ``deep``, also the rules only a probe would hit (regexes,
    base64, TLS material present in the same set)."""
    ms = ManifestSet()
    seen: dict[tuple[str, str], str] = {}
    pending: list[tuple[dict[str, Any], str, int]] = []
    for root in paths:
        if not root.exists():
            ms.problems.append(Problem(str(root), 0, "", "no such file or directory"))
            continue
        for path in manifest_files(root):
            for doc, item in _documents(path):
                if isinstance(item, Problem):
                    ms.problems.append(item)
                    continue
                for obj in _flatten(item):
                    if obj is None:
                        continue
                    if not isinstance(obj, dict):
                        ms.problems.append(Problem(str(path), doc, "", "not a YAML mapping"))
                    elif _is_tcpmonitor(obj):
                        pending.append((obj, str(path), doc))
                    elif (
                        obj.get("kind") in ("Secret", "ConfigMap") and obj.get("apiVersion") == "v1"
                    ):
                        _collect_data(obj, ms, str(path), doc)
    for obj, file, doc in pending:
        try:
            monitor = TcpMonitor.model_validate(obj)
        except ValidationError as exc:
            ms.problems.extend(validation_problems(exc, file, doc))
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
    try:
        material = resolve_material(monitor.spec, monitor.metadata.namespace, store, lenient=True)
        compile_plan(monitor.spec, material, require_material=False)
    except PlanError as exc:
        return Problem(file, doc, exc.field, exc.message)
    return None
