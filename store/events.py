"""The realtime streams' event history, which also numbers them.

A stream (`market:{id}`, `user:{id}`) numbers its events 1, 2, 3… across every instance: taking a number is
inserting the event (unique (stream, seq)), an event's optional `key` is unique too, and the history is trimmed,
never expired. Why that leaves no holes and no copies after a crash: docs/architecture.md, "Events: an outbox in
the order document".
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from store.client import Database
from store.codec import epoch_ms, now

TRIM_EVERY = 100
DUPLICATE_KEY = 11000
# How often a writer tries the next number when others keep taking it first (other instances
# writing the same stream at the same moment; one instance serializes its own writes per stream).
RESERVE_ATTEMPTS = 32
# A hint older than this is not trusted (re-read): the number after it cannot have been trimmed yet.
HINT_SECONDS = 600.0
HINTS_KEPT = 10_000
# The TTL index of earlier versions: it could delete a stream's newest event and restart its numbers.
OLD_TTL_KEY = [("created_at", ASCENDING)]


class SeqContention(Exception):
    """Other writers took every number this writer tried (RESERVE_ATTEMPTS of them)."""


@dataclass(frozen=True)
class NewEvent:
    stream: str
    event: str
    body: dict[str, Any]
    key: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    stream: str
    seq: int
    event: str
    payload: dict[str, Any]


class EventLog:
    def __init__(self, db: Database, *, max_events: int, max_age: timedelta) -> None:
        self.history = db["event_history"]
        self.max_events = max_events
        self.max_age = max_age
        self._hints: dict[str, tuple[int, float]] = {}

    async def create_indexes(self) -> None:
        await self.history.create_index([("stream", ASCENDING), ("seq", ASCENDING)], unique=True, name="stream_seq")
        await self.history.create_index("key", unique=True, sparse=True, name="key")
        await self._drop_old_ttl_index()

    async def _drop_old_ttl_index(self) -> None:
        try:
            indexes = await self.history.index_information()
            for name, spec in indexes.items():
                if "expireAfterSeconds" in spec and list(spec.get("key", [])) == OLD_TTL_KEY:
                    await self.history.drop_index(name)
        except PyMongoError:  # best effort: a database without it, or a backend that cannot tell
            pass

    async def current_seq(self, stream: str) -> int:
        """The stream's last seq (0 before its first event)."""
        document = await self.history.find_one({"stream": stream}, {"seq": 1}, sort=[("seq", DESCENDING)])
        return int(document["seq"]) if document else 0

    async def append(
        self, stream: str, event: str, body: dict[str, Any], *, key: str | None = None
    ) -> StoredEvent | None:
        """Number and store one event (its payload is `{stream, seq, **body}`); None (nothing
        stored) when an event with this `key` is stored already."""
        last = self._hint(stream)
        if last is None:
            last = await self.current_seq(stream)
        for attempt in range(RESERVE_ATTEMPTS):
            seq = last + 1
            document, payload = _document(NewEvent(stream, event, body, key), seq)
            try:
                await self.history.insert_one(document)
            except DuplicateKeyError:
                if key is not None and await self.has(key):
                    return None
                # Someone else took this number: go on from the stream's last one.
                if attempt:
                    await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                last = max(await self.current_seq(stream), seq)
                continue
            return await self._stored(stream, seq, event, payload)
        raise SeqContention(stream)

    async def append_many(self, events: Sequence[NewEvent]) -> list[StoredEvent | None]:
        """Several events of distinct streams (an order's event on its market's and its customer's
        stream), each numbered and stored as `append` does, in ONE write when the numbers hinted
        are free (the usual case: one instance writes a stream at a time); an event whose number
        was taken meanwhile, or whose key is stored already, goes the way of `append`."""
        numbered: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for new in events:
            last = self._hint(new.stream)
            if last is None:
                last = await self.current_seq(new.stream)
            numbered.append((last + 1, *_document(new, last + 1)))
        refused: set[int] = set()
        try:
            await self.history.insert_many([document for _, document, _ in numbered], ordered=False)
        except BulkWriteError as error:
            for write_error in error.details.get("writeErrors", []):
                if write_error.get("code") != DUPLICATE_KEY:
                    raise
                refused.add(int(write_error["index"]))
        stored: list[StoredEvent | None] = []
        for index, (new, (seq, _, payload)) in enumerate(zip(events, numbered, strict=True)):
            if index in refused:
                stored.append(await self.append(new.stream, new.event, new.body, key=new.key))
            else:
                stored.append(await self._stored(new.stream, seq, new.event, payload))
        return stored

    async def _stored(self, stream: str, seq: int, event: str, payload: dict[str, Any]) -> StoredEvent:
        self._remember(stream, seq)
        if seq % TRIM_EVERY == 0 and seq > self.max_events:
            await self._trim(stream, seq)
        return StoredEvent(stream=stream, seq=seq, event=event, payload=payload)

    async def _trim(self, stream: str, seq: int) -> None:
        cutoff = epoch_ms(now() - self.max_age)
        with contextlib.suppress(PyMongoError):  # the event is stored; the stream's next trim catches up
            await self.history.delete_many(
                {"stream": stream, "seq": {"$lte": seq - self.max_events}, "created_ms": {"$lt": cutoff}}
            )

    def _hint(self, stream: str) -> int | None:
        hint = self._hints.get(stream)
        if hint is None or time.monotonic() - hint[1] > HINT_SECONDS:
            return None
        return hint[0]

    def _remember(self, stream: str, seq: int) -> None:
        if len(self._hints) >= HINTS_KEPT:
            self._hints.clear()
        previous = self._hints.get(stream)
        if previous is None or previous[0] < seq:
            self._hints[stream] = (seq, time.monotonic())

    async def has(self, key: str) -> bool:
        """Whether an event with this key is in the history."""
        return await self.history.find_one({"key": key}, {"_id": 1}) is not None

    async def by_key(self, key: str) -> StoredEvent | None:
        """The stored event with this key, if any."""
        document = await self.history.find_one({"key": key})
        return _from_history(document) if document else None

    async def after(self, stream: str, since: int, *, limit: int) -> list[StoredEvent]:
        """Stored events of a stream with seq > since, oldest first."""
        cursor = self.history.find({"stream": stream, "seq": {"$gt": since}}).sort("seq", ASCENDING).limit(limit)
        return [_from_history(document) async for document in cursor]


def _document(new: NewEvent, seq: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The history document of an event numbered `seq`, and its payload."""
    payload = {"stream": new.stream, "seq": seq, **new.body}
    stamp = now()
    # The payload is kept as JSON text: one opaque field reads back identically on every backend.
    document = {
        "_id": f"{new.stream}#{seq}", "stream": new.stream, "seq": seq, "event": new.event,
        "payload": orjson.dumps(payload).decode(), "created_at": stamp, "created_ms": epoch_ms(stamp),
    }  # fmt: skip
    if new.key is not None:
        document["key"] = new.key
    return document, payload


def _from_history(document: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        stream=document["stream"], seq=int(document["seq"]), event=document["event"],
        payload=orjson.loads(document["payload"]),
    )  # fmt: skip
