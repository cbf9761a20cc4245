"""Webhook endpoints and their deliveries (the rules live in hub/webhooks/).

Endpoints: one document per registered URL of a market, with the signing secret(s). The hub must
compute HMACs with the secret, so it is stored as given (not hashed); it leaves the server only in
the replies to registration and rotation, and the models below never show it (`exclude=True`).

Deliveries: one document per (endpoint, order event). Its `_id` is derived from the endpoint and the
event's key, so creating it again (a repair after a crash, two instances) inserts nothing new: the
unique `_id` makes creation idempotent. Times are integer milliseconds (`*_ms`): they are written
by `$set` on every attempt, and nx-27017 stores a `$set` datetime as a string
(docs/store-backends.md). A sender takes a delivery with a lease: a conditional update from the
exact `lease_until_ms` it read to `now + lease` with a token of its own; exactly one of several
senders wins, and only the token's holder may record the attempt's outcome.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from store.client import Database
from store.codec import epoch_ms, from_document, new_id, now

WebhookEventType = Literal["order.created", "order.updated"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


class WebhookEndpoint(BaseModel):
    id: str
    market_id: str
    url: str
    events: list[WebhookEventType]
    description: str = ""
    is_active: bool = True
    created_at: datetime
    # Never shown: the signing secrets, and when the previous one stops being used.
    secret: str = Field(exclude=True)
    previous_secret: str | None = Field(default=None, exclude=True)
    previous_secret_until_ms: int | None = Field(default=None, exclude=True)
    # Since when its deliveries have been failing (none delivered since); None while they succeed.
    failing_since_ms: int | None = Field(default=None, exclude=True)

    def signing_secrets(self, at_ms: int) -> list[str]:
        """The secrets a delivery made at `at_ms` is signed with: the current one, and the previous
        one during the overlap after a rotation."""
        if self.previous_secret and self.previous_secret_until_ms is not None and at_ms < self.previous_secret_until_ms:
            return [self.secret, self.previous_secret]
        return [self.secret]


class WebhookDelivery(BaseModel):
    id: str
    endpoint_id: str
    market_id: str
    event: WebhookEventType
    order_id: str
    stream: str
    seq: int
    status: DeliveryStatus
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_ms: int
    give_up_ms: int
    event_ms: int
    created_ms: int
    delivered_ms: int | None = None
    lease_until_ms: int = 0
    lease_token: str = ""
    body: str = Field(exclude=True)


def delivery_id(endpoint_id: str, event_key: str) -> str:
    """The same endpoint and event always make the same 24-hex id (and `webhook-id`)."""
    return hashlib.sha256(f"{endpoint_id}|{event_key}".encode()).hexdigest()[:24]


class WebhookEndpoints:
    def __init__(self, db: Database) -> None:
        self.collection = db["webhook_endpoints"]
        self.markets = db["markets"]

    async def create_indexes(self) -> None:
        await self.collection.create_index([("market_id", ASCENDING), ("created_ms", ASCENDING)], name="market")
        # Markets whose endpoints were written before markets carried the flag (see `insert`).
        with_endpoints = await self.collection.distinct("market_id")
        if with_endpoints:
            await self.markets.update_many({"_id": {"$in": with_endpoints}}, {"$set": {"webhooks": True}})

    async def insert(
        self, market_id: str, *, url: str, events: list[str], description: str, secret: str
    ) -> WebhookEndpoint:
        # The market's flag first: an order write that reads it unset may skip the look for endpoints,
        # so it must never be unset while an endpoint exists (a crash here leaves it set, harmlessly).
        await self.markets.update_one({"_id": market_id}, {"$set": {"webhooks": True}})
        stamp = now()
        document = {
            "_id": new_id(), "market_id": market_id, "url": url, "events": events, "description": description,
            "is_active": True, "secret": secret, "created_at": stamp, "created_ms": epoch_ms(stamp),
        }  # fmt: skip
        await self.collection.insert_one(document)
        return from_document(WebhookEndpoint, document)

    async def get(self, endpoint_id: str) -> WebhookEndpoint | None:
        document = await self.collection.find_one({"_id": endpoint_id})
        return from_document(WebhookEndpoint, document) if document else None

    async def of_market(self, market_id: str, *, active_only: bool = False) -> list[WebhookEndpoint]:
        query: dict[str, Any] = {"market_id": market_id}
        if active_only:
            query["is_active"] = True
        cursor = self.collection.find(query).sort([("created_ms", ASCENDING), ("_id", ASCENDING)])
        return [from_document(WebhookEndpoint, document) async for document in cursor]

    async def count(self, market_id: str) -> int:
        return await self.collection.count_documents({"market_id": market_id})

    async def update(self, endpoint_id: str, changes: dict[str, Any]) -> WebhookEndpoint | None:
        if changes:
            await self.collection.update_one({"_id": endpoint_id}, {"$set": changes})
        return await self.get(endpoint_id)

    async def rotate(self, endpoint: WebhookEndpoint, secret: str, *, previous_until_ms: int) -> bool:
        """Conditional on the secret read, so two rotations at once do not both keep 'the previous'."""
        result = await self.collection.update_one(
            {"_id": endpoint.id, "secret": endpoint.secret},
            {
                "$set": {
                    "secret": secret,
                    "previous_secret": endpoint.secret,
                    "previous_secret_until_ms": previous_until_ms,
                }
            },
        )
        return result.modified_count == 1

    async def delete(self, endpoint_id: str) -> bool:
        result = await self.collection.delete_one({"_id": endpoint_id})
        return result.deleted_count == 1

    async def note_failure(self, endpoint_id: str, event_ms: int) -> None:
        """A delivery of an event at `event_ms` failed an attempt: the endpoint fails since then at the latest."""
        await self.collection.update_one(
            {
                "_id": endpoint_id,
                "$or": [{"failing_since_ms": {"$exists": False}}, {"failing_since_ms": {"$gt": event_ms}}],
            },
            {"$set": {"failing_since_ms": event_ms}},
        )

    async def note_success(self, endpoint_id: str) -> None:
        await self.collection.update_one(
            {"_id": endpoint_id, "failing_since_ms": {"$exists": True}}, {"$unset": {"failing_since_ms": ""}}
        )

    async def deactivate_failing(self, endpoint_id: str, failing_since_before_ms: int) -> bool:
        """Deactivate it when nothing was delivered since the bound; True for the one caller that did it."""
        result = await self.collection.update_one(
            {"_id": endpoint_id, "is_active": True, "failing_since_ms": {"$lte": failing_since_before_ms}},
            {"$set": {"is_active": False}},
        )
        return result.modified_count == 1


class WebhookDeliveries:
    def __init__(self, db: Database) -> None:
        self.collection = db["webhook_deliveries"]

    async def create_indexes(self) -> None:
        # The senders' look-up of due work, and the log of one endpoint, newest first.
        await self.collection.create_index([("status", ASCENDING), ("next_attempt_ms", ASCENDING)], name="due")
        await self.collection.create_index(
            [("endpoint_id", ASCENDING), ("status", ASCENDING), ("created_ms", DESCENDING)], name="log"
        )

    async def create(self, delivery: WebhookDelivery) -> bool:
        """Insert it unless it exists (same endpoint and event); True when this call created it."""
        document = delivery.model_dump(mode="python")
        document["_id"] = document.pop("id")
        document["body"] = delivery.body
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            return False
        return True

    async def get(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
        document = await self.collection.find_one({"_id": delivery_id, "endpoint_id": endpoint_id})
        return _delivery(document) if document else None

    async def log(
        self, endpoint_id: str, *, status: str | None, skip: int, limit: int
    ) -> tuple[list[WebhookDelivery], int]:
        query: dict[str, Any] = {"endpoint_id": endpoint_id}
        if status is not None:
            query["status"] = status
        total = await self.collection.count_documents(query)
        cursor = (
            self.collection.find(query).sort([("created_ms", DESCENDING), ("_id", DESCENDING)]).skip(skip).limit(limit)
        )
        return [_delivery(document) async for document in cursor], total

    async def due(self, at_ms: int, *, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries whose attempt is due and whose lease (if any) has run out, oldest first."""
        cursor = (
            self.collection.find(
                {"status": "pending", "next_attempt_ms": {"$lte": at_ms}, "lease_until_ms": {"$lt": at_ms}}
            )
            .sort([("next_attempt_ms", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_delivery(document) async for document in cursor]

    async def lease(self, delivery: WebhookDelivery, *, until_ms: int, token: str) -> bool:
        """Take it for one attempt (counted now: a sender that dies mid-attempt made one); one winner."""
        result = await self.collection.update_one(
            {
                "_id": delivery.id,
                "status": "pending",
                "lease_until_ms": delivery.lease_until_ms,
                "lease_token": delivery.lease_token,
            },
            {"$set": {"lease_until_ms": until_ms, "lease_token": token}, "$inc": {"attempts": 1}},
        )
        return result.modified_count == 1

    async def finish(self, delivery_id: str, token: str, changes: dict[str, Any]) -> bool:
        """Record an attempt's outcome and release the lease, if this sender still holds it."""
        result = await self.collection.update_one(
            {"_id": delivery_id, "lease_token": token}, {"$set": {**changes, "lease_until_ms": 0, "lease_token": ""}}
        )
        return result.modified_count == 1

    async def retry_now(self, endpoint_id: str, delivery_id: str, at_ms: int) -> bool:
        """Send it again at once (same id), whatever its status; a last attempt even past its deadline."""
        document = await self.collection.find_one({"_id": delivery_id, "endpoint_id": endpoint_id}, {"give_up_ms": 1})
        if document is None:
            return False
        await self.collection.update_one(
            {"_id": delivery_id},
            {"$set": {"status": "pending", "next_attempt_ms": at_ms,
                      "give_up_ms": max(int(document.get("give_up_ms", 0)), at_ms)}},
        )  # fmt: skip
        return True

    async def delete_of_endpoint(self, endpoint_id: str) -> None:
        await self.collection.delete_many({"endpoint_id": endpoint_id})


def _delivery(document: dict[str, Any]) -> WebhookDelivery:
    data = dict(document)
    data["id"] = data.pop("_id")
    return WebhookDelivery.model_validate(data)
