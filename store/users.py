"""The users collection."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from store.client import Database
from store.codec import from_document, new_id, now, parse_id
from store.models import Role, UserRecord
from store.text import contains_text


class EmailTaken(Exception):
    pass


def email_key(email: str) -> str:
    """The form that makes emails unique regardless of letter case."""
    return email.strip().casefold()


class Users:
    def __init__(self, db: Database) -> None:
        self.collection = db["users"]

    async def create_indexes(self) -> None:
        await self.collection.create_index("email_key", unique=True, name="email_key_unique")
        await self.collection.create_index([("role", 1), ("created_at", -1)], name="role_recent")

    async def insert(self, *, email: str, name: str, password_hash: str, role: Role, **profile: Any) -> UserRecord:
        document = {
            "_id": new_id(),
            "email": email.strip(),
            "email_key": email_key(email),
            "name": name,
            "password_hash": password_hash,
            "role": role.value,
            "is_active": True,
            "created_at": now(),
            **profile,
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            raise EmailTaken(email) from None
        return from_document(UserRecord, document)

    async def get(self, user_id: str) -> UserRecord | None:
        oid = parse_id(user_id)
        if oid is None:
            return None
        document = await self.collection.find_one({"_id": oid})
        return from_document(UserRecord, document) if document else None

    async def by_email(self, email: str) -> UserRecord | None:
        document = await self.collection.find_one({"email_key": email_key(email)})
        return from_document(UserRecord, document) if document else None

    async def update(self, user_id: str, changes: dict[str, Any]) -> UserRecord | None:
        oid = parse_id(user_id)
        if oid is None:
            return None
        document = await self.collection.find_one_and_update(
            {"_id": oid}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        return from_document(UserRecord, document) if document else None

    async def search(
        self, *, role: Role | None, text: str | None, is_active: bool | None, skip: int, limit: int
    ) -> tuple[list[UserRecord], int]:
        """Newest first; `text` matches email or name as literal text, ignoring case."""
        query: dict[str, Any] = {}
        if role is not None:
            query["role"] = role.value
        if is_active is not None:
            query["is_active"] = is_active
        if text:
            query.update(contains_text(("email", "name"), text))
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("created_at", -1), ("_id", -1)]).skip(skip).limit(limit)
        return [from_document(UserRecord, document) async for document in cursor], total
