"""A monitor's last probe result as it is kept between probes: its values, not its models.

Every monitor keeps its last result until the next probe; the status writes (on a change and
on the heartbeat), a runner's location entry and the next probe's expiry check read it. As
pydantic models an Up result of a connect probe is about 1.2 KB: each model (the result, its
timings) has a ``__dict__`` and a set of the field names given, and each empty list field is
a list of its own. Kept here it is nested tuples holding the very same value objects (about
200 bytes for that result), trailing defaults left out, and it is rebuilt with
``model_construct`` when read: no validation, no conversion, so the status, Events and
metrics made from the rebuilt result are those the result itself gave.

The form: a model is a tuple of its class and its field values in declaration order (a
trailing run of defaults left out); a list is a tuple of its items; any other value is kept
as it is. No result field holds a tuple, so a tuple is always one of these two, told apart by
its first item (a class only for a model).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, NewType

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..api import ProbeResult

KeptResult = NewType("KeptResult", tuple[Any, ...])


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    # How the field's default is made back when left out: a value (None, False...), or a new
    # empty list each time (a list field's default factory).
    default: object
    new_list: bool


def keep(result: ProbeResult) -> KeptResult:
    """The compact form of ``result`` (shares its values: results are never mutated)."""
    return KeptResult(_pack_model(result))


def restore(kept: KeptResult) -> ProbeResult:
    """The result ``kept`` was made from, as a new model with the same values."""
    result = _unpack(kept)
    if not isinstance(result, ProbeResult):
        raise TypeError(f"not a kept ProbeResult: {type(result).__name__}")
    return result


def warning_codes(kept: KeptResult | None) -> frozenset[str]:
    """The codes of the kept result's warnings, without rebuilding it (read on every probe)."""
    if kept is None:
        return frozenset()
    index = 1 + _WARNINGS_INDEX
    warnings = kept[index] if len(kept) > index else ()
    # Each warning is a kept Problem: (Problem, code, message).
    return frozenset(warning[1] for warning in warnings)


def _pack_model(model: BaseModel) -> tuple[Any, ...]:
    fields = _fields(type(model))
    values = model.__dict__
    packed = [_pack(values[f.name]) for f in fields]
    end = len(packed)
    while end and _is_default(fields[end - 1], values[fields[end - 1].name]):
        end -= 1
    return (type(model), *packed[:end])


def _pack(value: object) -> object:
    if isinstance(value, BaseModel):
        return _pack_model(value)
    if isinstance(value, list):
        return tuple(_pack(item) for item in value)
    return value


def _unpack(value: object) -> object:
    if not isinstance(value, tuple):
        return value
    if not value or not isinstance(value[0], type):
        return [_unpack(item) for item in value]
    model: type[BaseModel] = value[0]
    fields = _fields(model)
    values: dict[str, Any] = {}
    given: set[str] = set()
    for i, f in enumerate(fields, start=1):
        if i < len(value):
            item = _unpack(value[i])
            if not _is_default(f, item):
                given.add(f.name)
        else:
            item = [] if f.new_list else f.default
        values[f.name] = item
    # The set of fields given names the values that are not defaults, as the probe builds it
    # (engine._construct); nothing dumps with exclude_unset, so it changes no output.
    return model.model_construct(given, **values)


def _is_default(f: _Field, value: object) -> bool:
    if f.new_list:
        return value == []
    # The same type as well: 0.0 == False, and a float field's 0.0 is a value.
    return type(value) is type(f.default) and value == f.default


@cache
def _fields(model: type[BaseModel]) -> tuple[_Field, ...]:
    return tuple(_describe(name, info) for name, info in model.model_fields.items())


_REQUIRED = object()  # never equal to a value: a required field is never left out


def _describe(name: str, info: FieldInfo) -> _Field:
    if info.default_factory is list:
        return _Field(name, None, new_list=True)
    if info.is_required() or info.default_factory is not None:
        # A model made by a factory (timings) is always kept.
        return _Field(name, _REQUIRED, new_list=False)
    return _Field(name, info.default, new_list=False)


_WARNINGS_INDEX = list(ProbeResult.model_fields).index("warnings")
