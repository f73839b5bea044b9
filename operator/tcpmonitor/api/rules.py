"""Cross-field rules, written once for two evaluators.

The API server checks them as CEL ``x-kubernetes-validations``; ``tcpmonitor validate`` and the
operator check them in Python. Keeping both halves of a rule in one object is what lets a table
test prove that the offline validator accepts exactly what the API server accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

STORED = "stored"  # validation context key: the object was read back from the API server


@dataclass(frozen=True)
class Violation:
    """What a check found at a field below its rule's object (``.assertions[2].target``)."""

    field_path: str
    message: str


@dataclass(frozen=True)
class CrossFieldRule:
    """One rule: a CEL expression for the API server, a Python check for everyone else.

    ``check`` returns the same message that ``message_expression`` renders, or None when the
    object satisfies the rule; or a :class:`Violation` to name a field the CEL cannot (an item
    of a list). ``field_path`` (``.timeout``) points the error at a field the way the API
    server's ``fieldPath`` does. ``message`` is what the API server quotes, instead of the
    rule's text, when the rule fails to evaluate (it then reports the object, not
    ``field_path``). ``optional_old_self`` evaluates the rule on create too, with ``oldSelf``
    an optional that is empty then; the Python check always sees a create.
    """

    rule: str
    message_expression: str
    check: Callable[[Any], str | Violation | None]
    field_path: str | None = None
    message: str | None = None
    optional_old_self: bool = False
    # Refused on write (API server, validate, files) but not when an object already stored is
    # read back with context STORED: a bound added later must not make the operator drop such
    # an object unseen; the runtime reports it on the monitor instead.
    on_write_only: bool = False

    def to_schema(self) -> dict[str, str | bool]:
        out: dict[str, str | bool] = {
            "rule": self.rule,
            "messageExpression": self.message_expression,
        }
        if self.message:
            out["message"] = self.message
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.optional_old_self:
            out["optionalOldSelf"] = True
        return out


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields refused, immutable.

    Unknown fields are refused because ``kubectl apply`` validates strictly against the
    structural schema; offline validation must not be more lenient than the cluster.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=False,
    )

    cross_field_rules: ClassVar[tuple[CrossFieldRule, ...]] = ()

    @model_validator(mode="after")
    def _apply_cross_field_rules(self, info: ValidationInfo) -> ApiModel:
        stored = bool(info.context and info.context.get(STORED))
        for rule in type(self).cross_field_rules:
            if stored and rule.on_write_only:
                continue
            found = rule.check(self)
            if found is None:
                continue
            if isinstance(found, Violation):
                path, message = found.field_path, found.message
            else:
                path, message = rule.field_path or "", found
            # The message goes in as context, not as the template: it may quote user input
            # with braces in it (a regex such as a{2}).
            raise PydanticCustomError(
                "cross_field_rule", "{message}", {"field_path": path, "message": message}
            )
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.cross_field_rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [r.to_schema() for r in cls.cross_field_rules]
        return schema
