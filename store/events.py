"""The realtime streams' sequence counters and their bounded event history.

A stream (`market:{id}`, `user:{id}`) numbers its events 1, 2, 3… with one atomic upserted
`$inc` per event, shared by every instance. Each event is stored with its number so a client
that missed some (reconnect, Redis outage) can be sent exactly those. The history is bounded
twice: by count (the last `max_events` of a stream, trimmed every TRIM_EVERY events) and by age
(a TTL index on `created_at`, plus a `created_ms` filter because real MongoDB expires lazily).

An event may carry a `key` naming what it reports (e.g. one order's version): a unique (sparse)
index keeps a second copy of it out of the history, so publishing the same thing again, after a
crash or from two instances at once, stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from store.client import Database
from store.codec import epoch_ms, now

TRIM_EVERY = 100
TTL_INDEX = "created_ttl"


@dataclass(frozen=True)
class StoredEvent:
    stream: str
    seq: int
    event: str
    payload: dict[str, Any]


class EventLog:
    def __init__(self, db: Database, *, max_events: int, max_age: timedelta) -> None:
        self.counters = db["event_counters"]
        self.history = db["event_history"]
        self.max_events = max_events
        self.max_age = max_age

    async def create_indexes(self) -> None:
        await self.history.create_index([("stream", ASCENDING), ("seq", ASCENDING)], unique=True, name="stream_seq")
        await self.history.create_index("key", unique=True, sparse=True, name="key")
        ttl = int(self.max_age.total_seconds())
        try:
            await self.history.create_index("created_at", expireAfterSeconds=ttl, name=TTL_INDEX)
        except OperationFailure:
            # The TTL setting changed since the index was made: replace it.
            await self.history.drop_index(TTL_INDEX)
            await self.history.create_index("created_at", expireAfterSeconds=ttl, name=TTL_INDEX)

    async def next_seq(self, stream: str) -> int:
        for attempt in range(2):
            try:
                document = await self.counters.find_one_and_update(
                    {"_id": stream}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:
                # Two first events of a stream upserted at once; the counter exists now.
                if attempt:
                    raise
                continue
            assert document is not None
            return int(document["seq"])
        raise AssertionError("unreachable")

    async def current_seq(self, stream: str) -> int:
        document = await self.counters.find_one({"_id": stream})
        return int(document["seq"]) if document else 0

    async def append(
        self, stream: str, seq: int, event: str, payload: dict[str, Any], *, key: str | None = None
    ) -> bool:
        """Store one event; False (nothing stored) when an event with this `key` is stored already."""
        stamp = now()
        # The payload is kept as JSON text: one opaque field reads back identically on every backend.
        document = {
            "_id": f"{stream}#{seq}", "stream": stream, "seq": seq, "event": event,
            "payload": orjson.dumps(payload).decode(), "created_at": stamp, "created_ms": epoch_ms(stamp),
        }  # fmt: skip
        if key is not None:
            document["key"] = key
        try:
            await self.history.insert_one(document)
        except DuplicateKeyError:
            if key is None or not await self.has(key):
                raise
            return False
        if seq % TRIM_EVERY == 0 and seq > self.max_events:
            await self.history.delete_many({"stream": stream, "seq": {"$lte": seq - self.max_events}})
        return True

    async def has(self, key: str) -> bool:
        """Whether an event with this key is in the history."""
        return await self.history.find_one({"key": key}, {"_id": 1}) is not None

    async def after(self, stream: str, since: int, *, limit: int) -> list[StoredEvent]:
        """Stored events of a stream with seq > since, oldest first, not older than max_age."""
        cutoff = epoch_ms(now() - self.max_age)
        cursor = self.history.find({"stream": stream, "seq": {"$gt": since}}).sort("seq", ASCENDING).limit(limit)
        return [
            StoredEvent(stream=stream, seq=int(doc["seq"]), event=doc["event"], payload=orjson.loads(doc["payload"]))
            async for doc in cursor
            if int(doc.get("created_ms", 0)) >= cutoff
        ]
