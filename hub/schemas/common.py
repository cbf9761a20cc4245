"""Shapes shared by every area: the input base, pagination, the error envelope."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError

ID_FORMAT_ERROR = "id_format"
_ID_PATTERN = r"^[0-9a-fA-F]{24}$"


def _object_id(value: str) -> str:
    # An error type of its own: a malformed id in a body is 400 BAD_REQUEST, not 422 (DESIGN.md).
    if not re.fullmatch(_ID_PATTERN, value):
        raise PydanticCustomError(ID_FORMAT_ERROR, "must be a 24-hex id")
    return value


# What pydantic's strip_whitespace removes (Unicode White_Space): a stripped text that must not end up
# empty must contain one other character. The OpenAPI document says so with this pattern.
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = f"[^{_WHITE_SPACE}]"


class NotBlankInSchema:
    """Schema-only marker for a stripped text with min_length 1: "   " passes min_length in JSON
    Schema but is empty once stripped, so the document adds NOT_BLANK_PATTERN."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = NOT_BLANK_PATTERN
        return schema


# For list fields whose values must be distinct (a validator checks it; the document says so).
DISTINCT_ITEMS: dict[str, Any] = {"uniqueItems": True}

ObjectIdStr = Annotated[str, AfterValidator(_object_id), WithJsonSchema({"type": "string", "pattern": _ID_PATTERN})]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NotBlankInSchema()]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


# A key of a free-form map (business_hours, preferences): MongoDB reads `$` and `.` in a field name
# as operators and paths, and BSON cannot hold a NUL in one.
PLAIN_KEY_PATTERN = r"^[^$.\x00]*$"
_INT64 = 2**63


def storage_problem(value: Any) -> str | None:
    """What a free-form JSON value holds that a MongoDB document cannot (found by fuzzing: a NUL
    in a name, or a 9-byte integer, made the write fail with 500)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not re.fullmatch(PLAIN_KEY_PATTERN, key):
                return "names may not contain NUL, '$' or '.'"
            problem = storage_problem(item)
            if problem:
                return problem
    elif isinstance(value, list):
        return next(filter(None, map(storage_problem, value)), None)
    elif isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        return "integers must fit in 64 bits"
    return None


def _plain_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    problem = storage_problem(mapping)
    if problem:
        raise ValueError(problem)
    return mapping


# On a free-form map (an object whose keys the caller chooses): plain keys only, else 422.
PlainKeys = AfterValidator(_plain_keys)


def free_form_schema(values: dict[str, Any], *, max_entries: int) -> WithJsonSchema:
    """The OpenAPI schema of a free-form map: exactly what PlainKeys and the size limit accept."""
    schema = {"type": "object", "propertyNames": {"pattern": PLAIN_KEY_PATTERN}, "additionalProperties": values,
              "maxProperties": max_entries}  # fmt: skip
    return WithJsonSchema(schema)


def _exact_nullability(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The JSON schema of a body says what the server accepts: a field that `not_null` guards may
    be left out but not sent as null, so its schema drops the null branch (and the null default)."""
    guarded: set[str] = set()
    for decorator in model.__pydantic_decorators__.field_validators.values():
        if getattr(decorator.func, "__func__", decorator.func) is _not_null:
            guarded.update(decorator.info.fields)
    properties = schema.get("properties", {})
    for name in guarded:
        prop = properties.get(name)
        if prop is None:
            continue
        branches = [branch for branch in prop.pop("anyOf", []) if branch != {"type": "null"}]
        if len(branches) == 1:
            prop.update(branches[0])
        elif branches:
            prop["anyOf"] = branches
        if prop.get("default", 0) is None:
            del prop["default"]


class Input(BaseModel):
    """Base for request bodies and queries: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000, json_schema_extra=_exact_nullability)


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out, but not null")
    return value


def not_null(*fields: str) -> Any:
    """For PATCH bodies: these fields may be left out, but an explicit null would blank a value
    the entity cannot be without (defaults are not validated, so only a sent null fails)."""
    return field_validator(*fields)(_not_null)


class Page(Input):
    skip: int = Field(default=0, ge=0, le=1_000_000)
    limit: int = Field(default=20, ge=1, le=100)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str
