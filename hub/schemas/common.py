"""Shapes shared by every area: the input base, pagination, the error envelope."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

ID_FORMAT_ERROR = "id_format"
_ID_PATTERN = r"^[0-9a-fA-F]{24}$"


def _object_id(value: str) -> str:
    # An error type of its own: a malformed id in a body is 400 BAD_REQUEST, not 422 (DESIGN.md).
    if not re.fullmatch(_ID_PATTERN, value):
        raise PydanticCustomError(ID_FORMAT_ERROR, "must be a 24-hex id")
    return value


ObjectIdStr = Annotated[str, AfterValidator(_object_id), WithJsonSchema({"type": "string", "pattern": _ID_PATTERN})]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


class Input(BaseModel):
    """Base for request bodies and queries: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)


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
