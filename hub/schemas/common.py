"""Shapes shared by every area: the input base, pagination, the error envelope."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ObjectIdStr = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{24}$")]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


class Input(BaseModel):
    """Base for request bodies and queries: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)


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
