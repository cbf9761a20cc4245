"""Stock taken by placements and put back by cancellations, each with ONE conditional write on the
product that also records who did it, so every step can be repeated safely after a crash.
Why this makes placing crash safe without transactions: docs/architecture.md."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from pymongo import UpdateOne

from store.client import Collection, Database
from store.products import NOT_DELETED

Statement = tuple[dict[str, Any], dict[str, Any]]  # (filter, update)


async def _update_each(collection: Collection, statements: list[Statement]) -> int:
    """Several updates in ONE command (an `update` with one statement each); a single one as
    update_one, the same one command (and mongomock-motor cannot run bulk_write under PyMongo 4.20:
    docs/store-backends.md). How many documents changed."""
    if not statements:
        return 0
    if len(statements) == 1:
        return int((await collection.update_one(*statements[0])).modified_count)
    result = await collection.bulk_write([UpdateOne(query, update) for query, update in statements], ordered=False)
    return int(result.modified_count)


async def _unset_each(collection: Collection, field: str, pairs: Iterable[tuple[str, str]]) -> None:
    """Drop `<field>.<name>` from documents, for (document_id, name) pairs: one write for all of them."""
    by_document: defaultdict[str, list[str]] = defaultdict(list)
    for document_id, name in pairs:
        by_document[document_id].append(name)
    await _update_each(
        collection,
        [
            ({"_id": document_id}, {"$unset": {f"{field}.{name}": "" for name in names}})
            for document_id, names in by_document.items()
        ],
    )


class TakenLine(NamedTuple):
    """The product as it was when its stock was taken: what the order line is priced from."""

    name: str
    price_cents: int


class StockHolds:
    """Stock held for one placement in flight, recorded on the product as `holds.<order_id>`."""

    def __init__(self, db: Database) -> None:
        self.products = db["products"]

    async def take(self, product_id: str, order_id: str, quantity: int, *, market_id: str) -> TakenLine | None:
        """Take `quantity` for the order if the product is on sale in this market and has the stock,
        recording the hold in the same write; the product as taken, or None (nothing changed).
        One round trip both checks and prices the line: the product is not read first."""
        document = await self.products.find_one_and_update(
            {
                "_id": product_id,
                "market_id": market_id,
                "is_available": {"$nin": [False]},
                "deleted": NOT_DELETED,
                "stock": {"$gte": quantity},
                f"holds.{order_id}": {"$exists": False},
            },
            {
                "$inc": {"stock": -quantity},
                "$set": {f"holds.{order_id}": quantity},
                "$currentDate": {"updated_at": True},
            },
            projection={"name": 1, "price_cents": 1},
        )
        return TakenLine(str(document["name"]), int(document["price_cents"])) if document else None

    async def give_back(self, order_id: str, lines: Sequence[tuple[str, int]]) -> int:
        """Return the held lines of a placement that will not be an order (one write for all of
        them); a line this order holds nothing of is left alone, so giving back twice returns once.
        How many lines came back."""
        return await _update_each(
            self.products,
            [
                (
                    {"_id": product_id, f"holds.{order_id}": {"$exists": True}},
                    {
                        "$inc": {"stock": quantity},
                        "$unset": {f"holds.{order_id}": ""},
                        "$currentDate": {"updated_at": True},
                    },
                )
                for product_id, quantity in lines
            ],
        )

    async def release(self, holds: Iterable[tuple[str, str]]) -> None:
        """The orders are written: their stock stays taken and the hold records go. `holds`:
        (product_id, order_id) pairs; one write for all of them."""
        await _unset_each(self.products, "holds", holds)

    async def available(self, product_ids: list[str]) -> dict[str, int]:
        cursor = self.products.find({"_id": {"$in": product_ids}}, {"stock": 1})
        return {str(document["_id"]): int(document.get("stock", 0)) async for document in cursor}


class OrderEffects:
    """The follow-up writes of order changes, each applied once: the write leaves a marker on its
    target, and applying again finds the marker and changes nothing (docs/architecture.md)."""

    def __init__(self, db: Database) -> None:
        self.products = db["products"]
        self.markets = db["markets"]

    async def return_stock(self, product_id: str, order_id: str, quantity: int) -> bool:
        """Put a cancelled order's line back; False when it was put back already."""
        result = await self.products.update_one(
            {"_id": product_id, f"returned.{order_id}": {"$exists": False}},
            {
                "$inc": {"stock": quantity},
                "$set": {f"returned.{order_id}": quantity},
                "$currentDate": {"updated_at": True},
            },
        )
        return result.modified_count == 1

    async def forget_returned(self, markers: Iterable[tuple[str, str]]) -> None:
        """Drop (product_id, order_id) markers, one write for all of them."""
        await _unset_each(self.products, "returned", markers)

    async def count(self, market_id: str, marker: str, *, orders: int, revenue_cents: int) -> bool:
        """Add to the market's counters once per `marker`; False when it was added already."""
        result = await self.markets.update_one(
            {"_id": market_id, f"counted.{marker}": {"$exists": False}},
            {"$inc": {"total_orders": orders, "total_revenue_cents": revenue_cents}, "$set": {f"counted.{marker}": 1}},
        )
        return result.modified_count == 1

    async def forget_counted(self, markers: Iterable[tuple[str, str]]) -> None:
        """Drop (market_id, marker) pairs, one write for all of them."""
        await _unset_each(self.markets, "counted", markers)
