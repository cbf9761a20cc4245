"""Users: registration, login and profile bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints, field_validator, model_validator

from auth.passwords import MAX_PASSWORD_CHARS, password_problem
from hub.schemas.common import Input, ShortText, not_null
from store.models import Locale, User

Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{5,25}$")]
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_CHARS * 4)]


class UserRegister(Input):
    email: EmailStr = Field(max_length=254)
    name: ShortText
    password: Password
    confirm_password: Password
    role: Literal["customer", "market_admin", "super_admin"] = "customer"
    locale: Locale = "en"
    phone: Phone | None = None
    address: Address | None = None

    @field_validator("password")
    @classmethod
    def _strong_enough(cls, value: str) -> str:
        problem = password_problem(value)
        if problem:
            raise ValueError(f"password {problem}")
        return value

    @model_validator(mode="after")
    def _passwords_match(self) -> UserRegister:
        if self.password != self.confirm_password:
            raise ValueError("passwords do not match")
        return self


class UserLogin(Input):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
    password: Password


class UserUpdate(Input):
    name: ShortText | None = None
    locale: Locale | None = None
    phone: Phone | None = None
    address: Address | None = None
    preferences: dict[str, Any] | None = Field(default=None, max_length=50)

    _not_null = not_null("name", "locale", "preferences")

    @field_validator("preferences")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(repr(value)) > 4096:
            raise ValueError("preferences must be at most 4 KiB")
        problem = _storage_problem(value)
        if problem:
            raise ValueError(f"preferences {problem}")
        return value


_INT64 = 2**63


def _storage_problem(value: Any) -> str | None:
    """What a free-form JSON value holds that a MongoDB document cannot (found by fuzzing: a NUL
    in a name, or a 9-byte integer, made the write fail with 500)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key or key.startswith("$") or "." in key:
                return "names may not contain NUL or '.', nor start with '$'"
            problem = _storage_problem(item)
            if problem:
                return problem
    elif isinstance(value, list):
        return next(filter(None, map(_storage_problem, value)), None)
    elif isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        return "integers must fit in 64 bits"
    return None


class LoginReply(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
    user: User
