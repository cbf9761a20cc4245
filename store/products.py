"""The products collection; stock is changed only by conditional atomic updates."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument

from store.client import Database
from store.codec import from_document, new_id, now, parse_id
from store.models import Product
from store.text import contains_text

# `$nin`, not `$ne`: in update filters nx-27017 never matches `$ne` on a missing field
# (docs/store-backends.md); `$nin` means the same on every backend.
NOT_DELETED = {"$nin": [True]}


class Products:
    def __init__(self, db: Database) -> None:
        self.collection = db["products"]

    async def create_indexes(self) -> None:
        await self.collection.create_index([("market_id", 1), ("created_at", -1)], name="market_recent")
        await self.collection.create_index([("category", 1), ("created_at", -1)], name="category_recent")

    async def insert(self, market_id: str, currency: str, fields: dict[str, Any]) -> Product:
        stamp = now()
        document = {
            "_id": new_id(),
            **fields,
            "market_id": market_id,
            "currency": currency,
            "created_at": stamp,
            "updated_at": stamp,
        }
        await self.collection.insert_one(document)
        return from_document(Product, document)

    async def get(self, product_id: str) -> Product | None:
        oid = parse_id(product_id)
        if oid is None:
            return None
        document = await self.collection.find_one({"_id": oid, "deleted": NOT_DELETED})
        return from_document(Product, document) if document else None

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]:
        oids = [oid for oid in map(parse_id, product_ids) if oid is not None]
        cursor = self.collection.find({"_id": {"$in": oids}, "deleted": NOT_DELETED})
        return {str(document["_id"]): from_document(Product, document) async for document in cursor}

    async def of_market(self, market_id: str, *, limit: int) -> list[Product]:
        """A market's products (not removed), oldest first, at most `limit`: the storefront's catalog."""
        oid = parse_id(market_id)
        if oid is None:
            return []
        cursor = self.collection.find({"market_id": oid, "deleted": NOT_DELETED}).sort([("created_at", 1), ("_id", 1)])
        return [from_document(Product, document) async for document in cursor.limit(limit)]

    async def update(self, product_id: str, changes: dict[str, Any]) -> Product | None:
        oid = parse_id(product_id)
        if oid is None:
            return None
        document = await self.collection.find_one_and_update(
            {"_id": oid, "deleted": NOT_DELETED},
            {"$set": changes, "$currentDate": {"updated_at": True}},
            return_document=ReturnDocument.AFTER,
        )
        return from_document(Product, document) if document else None

    async def delete(self, product_id: str) -> bool:
        """Soft delete: orders keep pointing at the product, and its stock can still come back."""
        oid = parse_id(product_id)
        if oid is None:
            return False
        result = await self.collection.update_one(
            {"_id": oid, "deleted": NOT_DELETED},
            {"$set": {"deleted": True, "is_available": False}, "$currentDate": {"updated_at": True}},
        )
        return result.modified_count == 1

    async def follow_market(self, market_id: str, *, active: bool | None = None, currency: str | None = None) -> None:
        """Keep the copies of market facts on its products in step: a deactivated market's products
        leave the public catalog, and prices follow the market's currency."""
        changes: dict[str, Any] = {}
        if active is not None:
            changes["market_active"] = active
        if currency is not None:
            changes["currency"] = currency
        if changes:
            await self.collection.update_many({"market_id": market_id}, {"$set": changes})

    async def search(
        self,
        *,
        market_id: str | None,
        text: str | None,
        category: str | None,
        in_stock: bool | None,
        skip: int,
        limit: int,
    ) -> tuple[list[Product], int]:
        query: dict[str, Any] = {"deleted": NOT_DELETED, "market_active": {"$nin": [False]}}
        if market_id is not None:
            oid = parse_id(market_id)
            if oid is None:
                return [], 0
            query["market_id"] = oid
        if category:
            query["category"] = category
        if in_stock is True:
            query["stock"] = {"$gt": 0}
            query["is_available"] = True
        elif in_stock is False:
            query["$or"] = [{"stock": {"$lte": 0}}, {"is_available": False}]
        if text:
            query.update(contains_text(("name", "description"), text))
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("created_at", -1), ("_id", -1)]).skip(skip).limit(limit)
        return [from_document(Product, document) async for document in cursor], total
