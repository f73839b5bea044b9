"""ResultModel.assemble builds what model_construct builds, for every result and status model,
naming in model_fields_set only the values that are not the field's default."""

from __future__ import annotations

import pytest

from tcpmonitor.api import ProbeResult, TlsInfo
from tcpmonitor.api import status as status_module  # noqa: F401  (registers its models)
from tcpmonitor.api.result import ResultModel


def _models() -> list[type[ResultModel]]:
    found: list[type[ResultModel]] = []
    pending = list(ResultModel.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return sorted(found, key=lambda m: m.__qualname__)


MODELS = _models()


def test_every_model_of_the_api_is_covered() -> None:
    assert {ProbeResult, TlsInfo} <= set(MODELS) and len(MODELS) > 10


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__qualname__)
def test_assembled_model_is_the_constructed_one(model: type[ResultModel]) -> None:
    values = {name: object() for name in model.model_fields}
    built = model.assemble(**values)
    constructed = model.model_construct(**values)
    assert list(built.__dict__.items()) == list(constructed.__dict__.items())
    assert built.__pydantic_extra__ == constructed.__pydantic_extra__
    assert built.__pydantic_private__ == constructed.__pydantic_private__
    assert built.model_fields_set == set(model.model_fields)
    assert built == constructed


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__qualname__)
def test_defaults_are_left_out_of_the_fields_set(model: type[ResultModel]) -> None:
    fields = model.model_fields
    values = {
        name: None if field.default is None else [] if field.default_factory is list else 1
        for name, field in fields.items()
    }
    built = model.assemble(**values)
    assert built.__dict__ == model.model_construct(**values).__dict__
    assert built.model_fields_set == {
        name
        for name, field in fields.items()
        if field.default is not None and field.default_factory is not list
    }


def test_a_missing_or_unknown_field_is_refused() -> None:
    values = {name: None for name in TlsInfo.model_fields}
    del values["cipher"]
    with pytest.raises(TypeError, match="cipher"):
        TlsInfo.assemble(**values)
    with pytest.raises(TypeError, match="ciphers"):
        TlsInfo.assemble(**values, cipher=None, ciphers=None)
