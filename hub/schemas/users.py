"""Users: registration, login and profile bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints, field_validator, model_validator

from auth.passwords import MAX_PASSWORD_BYTES, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, password_problem
from hub.schemas.common import (
    Input,
    NotBlankInSchema,
    Page,
    PlainKeys,
    SearchText,
    ShortText,
    free_form_schema,
    not_null,
)
from hub.schemas.public import UserPublic
from store.models import Locale, Role

Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{5,25}$")]
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), NotBlankInSchema()]
# Signing in checks any password (a wrong one is 401); a new one must be of an acceptable length.
Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_BYTES)]
NewPassword = Annotated[str, StringConstraints(min_length=MIN_PASSWORD_CHARS, max_length=MAX_PASSWORD_CHARS)]
Preferences = Annotated[dict[str, Any], Field(max_length=50), PlainKeys, free_form_schema({}, max_entries=50)]


class UserRegister(Input):
    email: EmailStr = Field(max_length=254)
    name: ShortText
    password: NewPassword
    confirm_password: NewPassword
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
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254), NotBlankInSchema()]
    password: Password


class UserUpdate(Input):
    name: ShortText | None = None
    locale: Locale | None = None
    phone: Phone | None = None
    address: Address | None = None
    preferences: Preferences | None = None

    _not_null = not_null("name", "locale", "preferences")

    @field_validator("preferences")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(repr(value)) > 4096:
            raise ValueError("preferences must be at most 4 KiB")
        return value


class UserQuery(Page):
    role: Role | None = None
    search: SearchText | None = None
    is_active: bool | None = None


class UserAdminUpdate(Input):
    """What a super_admin may change of another account (a super_admin account: nothing, 403)."""

    is_active: bool | None = None
    role: Literal["customer", "market_admin"] | None = None

    _not_null = not_null("is_active", "role")


class LoginReply(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
    user: UserPublic
