"""Accounts: registration, sign-in, the token → user step, profiles, admin creation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import EmailStr, TypeAdapter, ValidationError

from auth.passwords import DUMMY_HASH, hash_password, needs_rehash, password_problem, verify_password
from auth.tokens import InvalidToken, TokenClaims, TokenIssuer
from hub.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from hub.schemas.public import UserPublic
from hub.schemas.users import LoginReply, UserLogin, UserRegister, UserUpdate
from store.models import Role, User
from store.users import EmailTaken, Users

# The signed-in user as the domain's rules take it: handlers pass it on, replies show it as UserPublic.
SignedIn = User


@dataclass(frozen=True, slots=True)
class ConnectedUser:
    """What a Socket.IO connection keeps of its signed-in user for its whole life: what the rules read
    (auth/policy.py's Principal) and what `auth:refresh` compares. The User itself, a pydantic model
    with a dict and a set of its fields (~1.3 KB), would be held by every idle connection."""

    id: str
    role: Role

    @classmethod
    def of(cls, user: SignedIn) -> ConnectedUser:
        return cls(user.id, user.role)


_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)


class Accounts:
    def __init__(self, users: Users, tokens: TokenIssuer) -> None:
        self.users = users
        self.tokens = tokens

    async def register(self, body: UserRegister) -> User:
        if body.role == Role.SUPER_ADMIN.value:
            raise Forbidden("super_admin accounts are created by an operator")
        password_hash = await asyncio.to_thread(hash_password, body.password)
        profile = body.model_dump(include={"locale", "phone", "address"})
        try:
            record = await self.users.insert(
                email=body.email, name=body.name, password_hash=password_hash, role=Role(body.role), **profile
            )
        except EmailTaken:
            raise Conflict("This email is already registered", code="EMAIL_TAKEN") from None
        return record.public()

    async def login(self, body: UserLogin) -> LoginReply:
        record = await self.users.by_email(body.email)
        stored_hash = record.password_hash if record else DUMMY_HASH
        valid = await asyncio.to_thread(verify_password, body.password, stored_hash)
        if record is None or not valid or not record.is_active:
            raise Unauthorized("Wrong email or password")
        if needs_rehash(record.password_hash):
            await self.users.update(record.id, {"password_hash": await asyncio.to_thread(hash_password, body.password)})
        token = self.tokens.issue(record.id, record.role.value)
        return LoginReply(
            access_token=token, expires_in=int(self.tokens.lifetime.total_seconds()), user=UserPublic.of(record)
        )

    async def authenticate(self, token: str | None) -> User:
        """The active user a token names; anything else is 401, whatever the transport."""
        user, _ = await self.authenticate_until(token)
        return user

    async def authenticate_until(self, token: str | None) -> tuple[User, datetime]:
        """The active user a token names, and when the token expires (a live connection ends then)."""
        if not token:
            raise Unauthorized("Missing bearer token")
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise Unauthorized("Invalid or expired token") from None
        return await self.authenticate_claims(claims)

    async def authenticate_claims(self, claims: TokenClaims) -> tuple[User, datetime]:
        """As `authenticate_until`, for a token already verified (by the rate limiter, once per request)."""
        record = await self.users.get(claims.user_id)
        if record is None or not record.is_active:
            raise Unauthorized("Invalid or expired token")
        return record.public(), claims.expires_at

    async def update_profile(self, user: User, body: UserUpdate) -> User:
        changes: dict[str, Any] = body.model_dump(exclude_unset=True)
        if not changes:
            return user
        record = await self.users.update(user.id, changes)
        if record is None:
            raise Unauthorized("Invalid or expired token")
        return record.public()

    async def create_admin(self, email: str, password: str, name: str = "Administrator") -> tuple[User, bool]:
        """Create a super_admin, or promote (and re-password) an existing account. True when created."""
        problem = password_problem(password)
        if problem:
            raise ValidationFailed(f"password {problem}")
        try:
            email = _EMAIL.validate_python(email)
        except ValidationError:
            raise ValidationFailed(f"{email!r} is not a valid email address") from None
        password_hash = await asyncio.to_thread(hash_password, password)
        existing = await self.users.by_email(email)
        if existing is not None:
            changes = {"role": Role.SUPER_ADMIN.value, "password_hash": password_hash, "is_active": True}
            record = await self.users.update(existing.id, changes)
            assert record is not None
            return record.public(), False
        record = await self.users.insert(email=email, name=name, password_hash=password_hash, role=Role.SUPER_ADMIN)
        return record.public(), True
