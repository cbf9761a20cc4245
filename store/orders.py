"""Orders and what placing one needs: the orders collection, stock holds, reservations and
idempotency records, and the follow-up writes (effects) of order changes.

Every write here is one single-document atomic step of the order path; why each is crash safe without
transactions (reservations and holds, the outbox in the order document, effects applied once with markers, and
what remains open): docs/architecture.md, "Crash safety of the order path".
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from store.client import Database
from store.codec import epoch_ms, from_document, now, parse_id, to_document
from store.models import Order, OrderStatus

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class Orders:
    def __init__(self, db: Database) -> None:
        self.collection = db["orders"]

    async def create_indexes(self) -> None:
        # Listing newest first per market / per customer / for everyone; analytics filter on the
        # same (market_id, created_ms) prefix; the sweeper reads (status, created_ms).
        await self.collection.create_index([("market_id", 1), ("created_ms", DESCENDING)], name="market_recent")
        await self.collection.create_index(
            [("market_id", 1), ("status", 1), ("created_ms", DESCENDING)], name="market_status_recent"
        )
        await self.collection.create_index([("customer_id", 1), ("created_ms", DESCENDING)], name="customer_recent")
        await self.collection.create_index([("status", 1), ("created_ms", 1)], name="status_created")
        await self.collection.create_index([("created_ms", DESCENDING)], name="recent")
        await self.collection.create_index("outbox_ms", sparse=True, name="outbox")

    @staticmethod
    def document(order: Order) -> dict[str, Any]:
        """The stored form: the order plus integer-ms copies of its timestamps for pipelines, and its
        unpublished events (docs/architecture.md, "Events: an outbox in the order document")."""
        document = to_document(order)
        document["created_ms"] = epoch_ms(order.created_at)
        document["updated_ms"] = epoch_ms(order.updated_at)
        if order.outbox:
            document["outbox"] = [event.model_dump() for event in order.outbox]
        if order.effects:
            document["effects"] = {key: effect.model_dump() for key, effect in order.effects.items()}
        if order.outbox or order.effects:
            document["outbox_ms"] = epoch_ms(now())
        return document

    async def insert(self, order: Order) -> None:
        await self.collection.insert_one(self.document(order))

    async def get(self, order_id: str) -> Order | None:
        oid = parse_id(order_id)
        if oid is None:
            return None
        document = await self.collection.find_one({"_id": oid})
        return from_document(Order, document) if document else None

    async def replace_if_unchanged(self, current: Order, new: Order) -> Order | None:
        """Compare-and-swap on (status, version, the effects still pending): the new document, or None
        when someone else won (or applied an effect this write would carry over)."""
        query: dict[str, Any] = {"_id": current.id, "status": current.status.value, "version": current.version}
        query.update({f"effects.{key}": {"$exists": True} for key in current.effects})
        document = await self.collection.find_one_and_replace(
            query,
            self.document(new),
            return_document=ReturnDocument.AFTER,
        )
        return from_document(Order, document) if document else None

    async def clear_outbox(self, order_id: str, version: int, *, keep_claim: bool = False) -> bool:
        """Drop the published events of the document at `version`. False when it has moved on (its
        writer carried the events over and publishes them) or was cleared already. `keep_claim`:
        effects are still pending, so the repair pass must still find the order (`outbox_ms`)."""
        unset = {"outbox": ""} if keep_claim else {"outbox": "", "outbox_ms": ""}
        result = await self.collection.update_one(
            {"_id": order_id, "version": version, "outbox_ms": {"$exists": True}}, {"$unset": unset}
        )
        return result.modified_count == 1

    async def clear_effect(self, order_id: str, key: str) -> bool:
        """Drop an applied effect, whatever the order's version; False when someone else did."""
        result = await self.collection.update_one(
            {"_id": order_id, f"effects.{key}": {"$exists": True}}, {"$unset": {f"effects.{key}": ""}}
        )
        return result.modified_count == 1

    async def with_unpublished_events(self, written_before_ms: int, *, limit: int) -> list[Order]:
        """Orders whose outbox was written (or last claimed) before the bound, oldest first."""
        cursor = (
            self.collection.find({"outbox_ms": {"$lt": written_before_ms}})
            .sort([("outbox_ms", 1), ("_id", 1)])
            .limit(limit)
        )
        return [from_document(Order, document) async for document in cursor]

    async def claim_outbox(self, order: Order, written_before_ms: int) -> bool:
        """One repairer at a time: move `outbox_ms` to now if it is still old and the order unchanged.
        Another instance's repair pass then leaves the order alone until the bound passes again."""
        result = await self.collection.update_one(
            {"_id": order.id, "version": order.version, "outbox_ms": {"$lt": written_before_ms}},
            {"$set": {"outbox_ms": epoch_ms(now())}},
        )
        return result.matched_count == 1  # (modified_count is 0 when it is still the same millisecond)

    async def exists_for_market(self, market_id: str) -> bool:
        return await self.collection.find_one({"market_id": market_id}, {"_id": 1}) is not None

    async def search(self, query: dict[str, Any], *, skip: int, limit: int) -> tuple[list[Order], int]:
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("created_ms", -1), ("_id", -1)]).skip(skip).limit(limit)
        return [from_document(Order, document) async for document in cursor], total

    async def pending_before(self, cutoff_ms: int, *, limit: int) -> list[Order]:
        cursor = (
            self.collection.find({"status": OrderStatus.PENDING.value, "created_ms": {"$lt": cutoff_ms}})
            .sort("created_ms", 1)
            .limit(limit)
        )
        return [from_document(Order, document) async for document in cursor]


class StockHolds:
    """Stock taken for one placement, recorded on the product in the same write (see above)."""

    def __init__(self, db: Database) -> None:
        self.products = db["products"]

    async def take(self, product_id: str, order_id: str, quantity: int) -> bool:
        result = await self.products.update_one(
            {"_id": product_id, "stock": {"$gte": quantity}, f"holds.{order_id}": {"$exists": False}},
            {
                "$inc": {"stock": -quantity},
                "$set": {f"holds.{order_id}": quantity},
                "$currentDate": {"updated_at": True},
            },
        )
        return result.modified_count == 1

    async def give_back(self, product_id: str, order_id: str, quantity: int) -> bool:
        """Return a held line; a no-op when this order holds nothing on the product."""
        result = await self.products.update_one(
            {"_id": product_id, f"holds.{order_id}": {"$exists": True}},
            {"$inc": {"stock": quantity}, "$unset": {f"holds.{order_id}": ""}, "$currentDate": {"updated_at": True}},
        )
        return result.modified_count == 1

    async def release(self, product_id: str, order_id: str) -> None:
        """The order is written: the stock stays taken, the hold record goes."""
        await self.products.update_one({"_id": product_id}, {"$unset": {f"holds.{order_id}": ""}})

    async def available(self, product_ids: list[str]) -> dict[str, int]:
        cursor = self.products.find({"_id": {"$in": product_ids}}, {"stock": 1})
        return {str(document["_id"]): int(document.get("stock", 0)) async for document in cursor}


class OrderEffects:
    """The follow-up writes of order changes, each applied once (docs/architecture.md, "Follow-up effects")."""

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

    async def forget_returned(self, product_id: str, order_id: str) -> None:
        await self.products.update_one({"_id": product_id}, {"$unset": {f"returned.{order_id}": ""}})

    async def count(self, market_id: str, marker: str, *, orders: int, revenue_cents: int) -> bool:
        """Add to the market's counters once per `marker`; False when it was added already."""
        result = await self.markets.update_one(
            {"_id": market_id, f"counted.{marker}": {"$exists": False}},
            {"$inc": {"total_orders": orders, "total_revenue_cents": revenue_cents}, "$set": {f"counted.{marker}": 1}},
        )
        return result.modified_count == 1

    async def forget_counted(self, market_id: str, marker: str) -> None:
        await self.markets.update_one({"_id": market_id}, {"$unset": {f"counted.{marker}": ""}})


class Reservations:
    """One document per placement in flight; its states: docs/architecture.md, "Placing an order"."""

    def __init__(self, db: Database) -> None:
        self.collection = db["order_reservations"]

    async def create_indexes(self) -> None:
        await self.collection.create_index("created_ms", name="created")

    async def open(self, order_id: str, lines: list[tuple[str, int]], idempotency_id: str | None) -> None:
        stamp = now()
        await self.collection.insert_one(
            {
                "_id": order_id,
                "lines": [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines],
                "idempotency_id": idempotency_id or "",
                "state": "open",
                "created_at": stamp,
                "created_ms": epoch_ms(stamp),
            }
        )

    async def claim(self, order_id: str, *, state: str, older_than_ms: int | None = None) -> bool:
        """`open` → `state`, conditional: exactly one of the committer and a repair wins."""
        query: dict[str, Any] = {"_id": order_id, "state": "open"}
        if older_than_ms is not None:
            query["created_ms"] = {"$lt": older_than_ms}
        result = await self.collection.update_one(query, {"$set": {"state": state}})
        return result.modified_count == 1

    async def get(self, order_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": order_id})

    async def stale(self, older_than_ms: int, *, limit: int) -> list[dict[str, Any]]:
        cursor = self.collection.find({"created_ms": {"$lt": older_than_ms}}).sort("created_ms", 1).limit(limit)
        return [document async for document in cursor]

    async def delete(self, order_id: str) -> None:
        await self.collection.delete_one({"_id": order_id})


class IdempotencyKeyTaken(Exception):
    def __init__(self, record: dict[str, Any] | None) -> None:
        super().__init__("idempotency key taken")
        self.record = record


class IdempotencyKeys:
    """`_id` = "{customer_id}:{key}": unique per customer on every backend, via `_id` itself."""

    def __init__(self, db: Database) -> None:
        self.collection = db["order_idempotency_keys"]

    async def create_indexes(self) -> None:
        # Keys are remembered for a day; the domain also checks the age, since real MongoDB's
        # TTL monitor runs only once a minute.
        await self.collection.create_index("created_at", expireAfterSeconds=IDEMPOTENCY_TTL_SECONDS, name="ttl")

    async def claim(self, record_id: str, body_hash: str, order_id: str) -> None:
        """Insert the record; IdempotencyKeyTaken (with the existing record) when it exists."""
        stamp = now()
        document = {
            "_id": record_id,
            "body_hash": body_hash,
            "order_id": order_id,
            "created_at": stamp,
            "created_ms": epoch_ms(stamp),
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            raise IdempotencyKeyTaken(await self.get(record_id)) from None

    async def get(self, record_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": record_id})

    async def forget(self, record_id: str, order_id: str) -> None:
        """Drop the record of a placement that did not produce its order (so the key can be retried)."""
        await self.collection.delete_one({"_id": record_id, "order_id": order_id})
