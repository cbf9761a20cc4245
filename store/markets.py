"""The markets collection."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from store.client import Database
from store.codec import from_document, new_id, now, parse_id
from store.models import Market
from store.text import contains_text


class MarketExists(Exception):
    pass


class Markets:
    def __init__(self, db: Database) -> None:
        self.collection = db["markets"]

    async def create_indexes(self) -> None:
        # One market per owner, for the life of the account (a deleted market stays, inactive).
        await self.collection.create_index("owner_id", unique=True, name="owner_unique")
        await self.collection.create_index([("is_active", 1), ("created_at", -1)], name="active_recent")

    async def insert(self, owner_id: str, fields: dict[str, Any]) -> Market:
        stamp = now()
        document = {
            "_id": new_id(),
            **fields,
            "owner_id": owner_id,
            "is_active": True,
            "verified": False,
            "rating": None,
            "total_orders": 0,
            "total_revenue_cents": 0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            raise MarketExists(owner_id) from None
        return from_document(Market, document)

    async def get(self, market_id: str) -> Market | None:
        oid = parse_id(market_id)
        if oid is None:
            return None
        document = await self.collection.find_one({"_id": oid})
        return from_document(Market, document) if document else None

    async def by_owner(self, owner_id: str) -> Market | None:
        oid = parse_id(owner_id)
        document = await self.collection.find_one({"owner_id": oid}) if oid else None
        return from_document(Market, document) if document else None

    async def update(self, market_id: str, changes: dict[str, Any]) -> Market | None:
        oid = parse_id(market_id)
        if oid is None:
            return None
        document = await self.collection.find_one_and_update(
            {"_id": oid}, {"$set": changes, "$currentDate": {"updated_at": True}}, return_document=ReturnDocument.AFTER
        )
        return from_document(Market, document) if document else None

    async def search(
        self, *, verified: bool | None, text: str | None, skip: int, limit: int
    ) -> tuple[list[Market], int]:
        query: dict[str, Any] = {"is_active": True}
        if verified is not None:
            query["verified"] = verified
        if text:
            query.update(contains_text(("name", "description"), text))
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("created_at", -1), ("_id", -1)]).skip(skip).limit(limit)
        return [from_document(Market, document) async for document in cursor], total
