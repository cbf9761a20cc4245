"""User administration by a super_admin: list, read, deactivate or reactivate, change role between
customer and market_admin. A change takes effect at once: the user's next request is judged on the
new record (auth reads it on every request), and their open connections are revoked everywhere."""

from __future__ import annotations

from typing import Any

from auth.policy import may_administer_users, may_be_changed_through_api
from hub.errors import Forbidden, NotFound
from hub.realtime.revocation import Reason, Revoker
from hub.schemas.users import UserAdminUpdate, UserQuery
from store.models import User
from store.users import Users


class UserAdmin:
    def __init__(self, users: Users, revoker: Revoker) -> None:
        self.users = users
        self.revoker = revoker

    @staticmethod
    def _allow(admin: User) -> None:
        if not may_administer_users(admin):
            raise Forbidden("Only a super_admin administers users")

    async def list_users(self, admin: User, query: UserQuery) -> tuple[list[User], int]:
        self._allow(admin)
        records, total = await self.users.search(
            role=query.role, text=query.search, is_active=query.is_active, skip=query.skip, limit=query.limit
        )
        return [record.public() for record in records], total

    async def user(self, admin: User, user_id: str) -> User:
        self._allow(admin)
        record = await self.users.get(user_id)
        if record is None:
            raise NotFound("User not found")
        return record.public()

    async def update_user(self, admin: User, user_id: str, body: UserAdminUpdate) -> User:
        target = await self.user(admin, user_id)
        if not may_be_changed_through_api(target):
            raise Forbidden("A super_admin account is not changed through the API")
        changes: dict[str, Any] = body.model_dump(exclude_unset=True)
        if not changes:
            return target
        record = await self.users.update(target.id, changes)
        if record is None:
            raise NotFound("User not found")
        updated = record.public()
        reason: Reason | None = None
        if not updated.is_active and target.is_active:
            reason = "deactivated"
        elif updated.role != target.role:
            reason = "role_changed"
        if reason is not None:
            await self.revoker.revoke_user(updated.id, reason)
        return updated
