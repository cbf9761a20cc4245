"""The orders collection: orders, the placements in flight that become them, their outboxes.

A placement in flight is a document here with `placing` set ("open", then "repairing" if the
repair pass takes it over) and none of an order's fields: every read of orders excludes it, and
committing replaces it with the order. `holds_ms` stays on the order until the stock holds on its
products are released; `idempotency` ("{customer_id}:{key}", unique) is claimed by the placement
and kept by the order for replays. Each write is one single-document atomic step; why that is
crash safe without transactions: docs/architecture.md, "Crash safety of the order path".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from store.client import Database
from store.codec import epoch_ms, from_document, now, parse_id, to_document
from store.models import Order, OrderStatus

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# Every read of orders excludes placements in flight (see above).
VISIBLE: dict[str, Any] = {"placing": {"$exists": False}}


class IdempotencyKeyTaken(Exception):
    """Another placement or order has this key; `existing` is its document (None: gone meanwhile)."""

    def __init__(self, existing: dict[str, Any] | None) -> None:
        super().__init__("idempotency key taken")
        self.existing = existing


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
        await self.collection.create_index("holds_ms", sparse=True, name="holds")
        await self.collection.create_index("idempotency", unique=True, sparse=True, name="idempotency")

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
        for field in ("idempotency", "idempotency_hash", "holds_ms"):
            if getattr(order, field) is not None:
                document[field] = getattr(order, field)
        return document

    async def insert(self, order: Order) -> None:
        await self.collection.insert_one(self.document(order))

    async def get(self, order_id: str) -> Order | None:
        oid = parse_id(order_id)
        if oid is None:
            return None
        document = await self.collection.find_one({"_id": oid, **VISIBLE})
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

    async def clear_outbox(
        self, order_id: str, version: int, *, effects: Sequence[str] = (), keep_claim: bool = False
    ) -> bool:
        """Drop the published events of the document at `version`, and the `effects` (keys) the
        caller applied, in one write. False when it has moved on (its writer carried the events over
        and publishes them) or was cleared already. `keep_claim`: effects are still pending, so the
        repair pass must still find the order (`outbox_ms`)."""
        unset = {"outbox": ""} if keep_claim else {"outbox": "", "outbox_ms": ""}
        query: dict[str, Any] = {"_id": order_id, "version": version, "outbox_ms": {"$exists": True}}
        for key in effects:
            query[f"effects.{key}"] = {"$exists": True}
            unset[f"effects.{key}"] = ""
        result = await self.collection.update_one(query, {"$unset": unset})
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

    async def search(self, scope: dict[str, Any], *, skip: int, limit: int) -> tuple[list[Order], int]:
        query = {**scope, **VISIBLE}
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

    # Placements in flight (see the module docstring)

    async def open_placement(
        self, order_id: str, lines: Sequence[tuple[str, int]], *, at_ms: int, idempotency: tuple[str, str] | None
    ) -> None:
        """Record a placement before any stock is taken. `idempotency`: (key, body hash); when
        another placement or order has the key, IdempotencyKeyTaken with its document."""
        document: dict[str, Any] = {
            "_id": order_id,
            "placing": "open",
            "holds_ms": at_ms,
            "lines": [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines],
        }
        if idempotency is not None:
            document["idempotency"], document["idempotency_hash"] = idempotency
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            if idempotency is None:
                raise
            raise IdempotencyKeyTaken(await self.collection.find_one({"idempotency": idempotency[0]})) from None

    async def commit_placement(self, order: Order) -> bool:
        """The placement becomes the order, if it is still "open" (else the repair pass took it)."""
        result = await self.collection.replace_one({"_id": order.id, "placing": "open"}, self.document(order))
        return result.matched_count == 1

    async def drop_placement(self, order_id: str) -> None:
        """Delete a placement that will not be an order (never an order: conditional on `placing`)."""
        await self.collection.delete_one({"_id": order_id, "placing": {"$exists": True}})

    async def claim_placement(self, order_id: str, *, older_than_ms: int) -> bool:
        """Take over an "open" placement ("repairing"), conditional: exactly one of the committer and
        a repair wins."""
        result = await self.collection.update_one(
            {"_id": order_id, "placing": "open", "holds_ms": {"$lt": older_than_ms}}, {"$set": {"placing": "repairing"}}
        )
        return result.modified_count == 1

    async def with_holds(self, older_than_ms: int, *, limit: int) -> list[dict[str, Any]]:
        """Placements, and orders whose holds are not released yet, from before the bound, oldest first."""
        cursor = self.collection.find({"holds_ms": {"$lt": older_than_ms}}).sort("holds_ms", 1).limit(limit)
        return [document async for document in cursor]

    async def holds_released(self, order_ids: Sequence[str]) -> None:
        if order_ids:
            await self.collection.update_many(
                {"_id": {"$in": list(order_ids)}, **VISIBLE}, {"$unset": {"holds_ms": ""}}
            )

    async def free_idempotency_key(self, order_id: str, key: str, *, created_before_ms: int) -> bool:
        """Let an order's key be used again once it is older than the replay window."""
        result = await self.collection.update_one(
            {"_id": order_id, "idempotency": key, "created_ms": {"$lt": created_before_ms}},
            {"$unset": {"idempotency": "", "idempotency_hash": ""}},
        )
        return result.modified_count == 1
