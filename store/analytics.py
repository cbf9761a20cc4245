"""Aggregation pipelines over the orders collection: the database does the counting.

Only the subset that is right on real MongoDB, nx-27017 and mongomock-motor is used
(docs/store-backends.md): `$match` on the integer `created_ms` (never on datetimes), a single
expression as `$group` `_id`, integer-ms bucketing with `$subtract`/`$mod` (keys come back as
floats), `$replaceRoot` after `$unwind`, and no `$lookup`.
"""

from __future__ import annotations

from typing import Any

from store.client import Database
from store.models import OrderStatus

_CANCELLED = OrderStatus.CANCELLED.value
_NOT_CANCELLED_TOTAL = {"$cond": [{"$eq": ["$status", _CANCELLED]}, 0, "$total_cents"]}


def period_match(from_ms: int, to_ms: int, *, market_id: str | None = None) -> dict[str, Any]:
    match: dict[str, Any] = {"created_ms": {"$gte": from_ms, "$lt": to_ms}}
    if market_id is not None:
        match["market_id"] = market_id
    return match


class OrderFigures:
    def __init__(self, db: Database) -> None:
        self.orders = db["orders"]
        self.markets = db["markets"]
        self.users = db["users"]

    async def _run(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [row async for row in self.orders.aggregate(pipeline)]

    async def by_status(self, match: dict[str, Any]) -> dict[str, tuple[int, int]]:
        """status → (orders, sum of total_cents)."""
        rows = await self._run(
            [
                {"$match": match},
                {"$group": {"_id": "$status", "orders": {"$sum": 1}, "revenue": {"$sum": "$total_cents"}}},
            ]
        )
        return {str(row["_id"]): (int(row["orders"]), int(row["revenue"])) for row in rows}

    async def top_products(self, match: dict[str, Any], *, limit: int) -> list[dict[str, Any]]:
        """Products of non-cancelled orders by revenue: {product_id, name, quantity, revenue_cents}."""
        rows = await self._run(
            [
                {"$match": {**match, "status": {"$ne": _CANCELLED}}},
                {"$unwind": "$items"},
                {"$replaceRoot": {"newRoot": "$items"}},
                {
                    "$group": {
                        "_id": "$product_id",
                        "name": {"$max": "$name"},
                        "quantity": {"$sum": "$quantity"},
                        "revenue": {"$sum": "$line_total_cents"},
                    }
                },
                {"$sort": {"revenue": -1, "quantity": -1, "_id": 1}},
                {"$limit": limit},
            ]
        )
        return [
            {
                "product_id": str(row["_id"]),
                "name": str(row["name"]),
                "quantity": int(row["quantity"]),
                "revenue_cents": int(row["revenue"]),
            }
            for row in rows
        ]

    async def timeseries(self, match: dict[str, Any], *, bucket_ms: int) -> dict[int, tuple[int, int]]:
        """bucket start (epoch ms, aligned to multiples of bucket_ms) → (orders, non-cancelled revenue)."""
        rows = await self._run(
            [
                {"$match": match},
                {
                    "$group": {
                        "_id": {"$subtract": ["$created_ms", {"$mod": ["$created_ms", bucket_ms]}]},
                        "orders": {"$sum": 1},
                        "revenue": {"$sum": _NOT_CANCELLED_TOTAL},
                    }
                },
            ]
        )
        return {int(row["_id"]): (int(row["orders"]), int(row["revenue"])) for row in rows}

    async def by_market(self, match: dict[str, Any], *, limit: int) -> list[tuple[str, int, int]]:
        """(market_id, orders, non-cancelled revenue), most orders first."""
        rows = await self._run(
            [
                {"$match": match},
                {"$group": {"_id": "$market_id", "orders": {"$sum": 1}, "revenue": {"$sum": _NOT_CANCELLED_TOTAL}}},
                {"$sort": {"orders": -1, "revenue": -1, "_id": 1}},
                {"$limit": limit},
            ]
        )
        return [(str(row["_id"]), int(row["orders"]), int(row["revenue"])) for row in rows]

    async def revenue_by_currency(self, match: dict[str, Any]) -> dict[str, int]:
        rows = await self._run(
            [
                {"$match": {**match, "status": {"$ne": _CANCELLED}}},
                {"$group": {"_id": "$currency", "revenue": {"$sum": "$total_cents"}}},
            ]
        )
        return {str(row["_id"]): int(row["revenue"]) for row in rows}

    async def market_names(self, market_ids: list[str]) -> dict[str, tuple[str, str]]:
        """market id → (name, currency), with a second query instead of `$lookup`."""
        cursor = self.markets.find({"_id": {"$in": market_ids}}, {"name": 1, "currency": 1})
        return {str(doc["_id"]): (str(doc.get("name", "")), str(doc.get("currency", "UAH"))) async for doc in cursor}

    async def active_markets(self) -> int:
        return await self.markets.count_documents({"is_active": True})

    async def users_total(self) -> int:
        return await self.users.count_documents({})
