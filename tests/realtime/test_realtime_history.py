"""The event history (which numbers the events) on every backend (nx-27017, mongomock-motor, real MongoDB when
MONGODB_URL is set), recovery's rules, and that publishing never fails or holds up its caller."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from hub.metrics import HubMetrics
from hub.realtime.history import History, Replay
from hub.realtime.publisher import BackgroundEmitter, Publisher
from store.client import connect
from store.events import TRIM_EVERY, EventLog, NewEvent
from tests.helpers.api import metric_value
from tests.helpers.nx import NxServer

BACKENDS = ["nx-27017", "mongomock"] + (["mongodb"] if os.environ.get("MONGODB_URL") else [])


@pytest.fixture(params=BACKENDS)
async def log(request: pytest.FixtureRequest, nx_server: NxServer, db_name: str) -> AsyncIterator[EventLog]:
    if request.param == "mongomock":
        db: Any = AsyncMongoMockClient(tz_aware=True)[db_name]
        client = None
    else:
        client = connect(nx_server.url if request.param == "nx-27017" else os.environ["MONGODB_URL"], timeout_seconds=5)
        db = client[db_name]
    events = EventLog(db, max_events=1000, max_age=timedelta(hours=24))
    await events.create_indexes()
    await events.create_indexes()  # idempotent
    yield events
    if client is not None:
        await client.drop_database(db_name)
        client.close()


async def test_events_of_several_streams_are_stored_together_and_numbered_each(log: EventLog) -> None:
    """One write for an order's event on both of its streams; a number another instance took
    meanwhile (this writer's hint is stale) or a key stored already goes the one-by-one way."""
    other = EventLog(log.history.database, max_events=1000, max_age=timedelta(hours=24))
    first = await log.append_many([NewEvent("market:m", "order:created", {"n": 1}, key="m|1"),
                                   NewEvent("user:u", "order:created", {"n": 1}, key="u|1")])  # fmt: skip
    assert [(event.stream, event.seq) for event in first if event] == [("market:m", 1), ("user:u", 1)]
    assert await other.append("market:m", "order:updated", {"n": 2}) is not None  # takes seq 2 behind log's back
    again = await log.append_many([NewEvent("market:m", "order:updated", {"n": 3}, key="m|3"),
                                   NewEvent("user:u", "order:created", {"n": 1}, key="u|1")])  # fmt: skip
    assert again[0] is not None and again[0].seq == 3 and again[0].payload == {"stream": "market:m", "seq": 3, "n": 3}
    assert again[1] is None  # stored already: not stored twice, no number taken
    assert await log.current_seq("user:u") == 1
    assert [event.seq for event in await log.after("market:m", 0, limit=10)] == [1, 2, 3]


async def append(log: EventLog, stream: str, count: int) -> list[int]:
    seqs = []
    for _ in range(count):
        stored = await log.append(stream, "order:created", {"order": {"id": str(len(seqs) + 1)}})
        assert stored is not None
        seqs.append(stored.seq)
    return seqs


async def test_numbers_are_per_stream_dense_and_taken_by_the_write(log: EventLog) -> None:
    # Two "instances" (their own hints) writing one stream at once: every number once, no hole.
    other = EventLog(log.history.database, max_events=1000, max_age=timedelta(hours=24))
    stored = await asyncio.gather(*(writer.append("market:a", "order:created", {"n": n})
                                    for n in range(10) for writer in (log, other)))  # fmt: skip
    assert sorted(event.seq for event in stored if event) == list(range(1, 21))
    assert all(event is not None and event.payload["seq"] == event.seq for event in stored)
    assert [e.seq for e in await log.after("market:a", 0, limit=100)] == list(range(1, 21))
    assert await append(log, "market:b", 1) == [1]
    assert await log.current_seq("market:a") == 20
    assert await log.current_seq("market:none") == 0
    # A stale hint (another instance wrote since) costs a retry, never a duplicate number.
    assert await append(other, "market:a", 1) == [21]
    assert await append(log, "market:a", 1) == [22]
    # The same key twice: stored once, and the second write takes no number.
    assert (await log.append("market:a", "order:created", {}, key="k")) is not None
    assert await other.append("market:a", "order:created", {}, key="k") is None
    assert await log.current_seq("market:a") == 23


async def test_history_reads_back_in_order_and_recovery_rules(log: EventLog) -> None:
    await append(log, "user:x", 5)
    await append(log, "user:y", 2)
    events = await log.after("user:x", 2, limit=10)
    assert [e.seq for e in events] == [3, 4, 5]
    assert events[0].payload == {"stream": "user:x", "seq": 3, "order": {"id": "3"}}
    assert events[0].event == "order:created"

    history = History(log)
    assert [e.seq for e in (await history.missed("user:x", 1)).events] == [2, 3, 4, 5]
    assert await history.missed("user:x", 5) == Replay()  # nothing missed
    assert (await history.missed("user:x", 9)).resync_seq == 5  # ahead of the stream: start over
    # A hole right after `since` that stays a hole (expired, or never written): resync.
    await log.history.delete_many({"stream": "user:x", "seq": {"$lte": 3}})
    assert (await history.missed("user:x", 1)).resync_seq == 5
    assert [e.seq for e in (await history.missed("user:x", 3)).events] == [4, 5]
    # A hole further on: the run up to it (the rest comes live, or on the next replay).
    await log.history.delete_many({"stream": "user:x", "seq": 5})
    assert [e.seq for e in (await history.missed("user:x", 3)).events] == [4]


async def test_history_is_trimmed_beyond_its_size_and_age_only(log: EventLog) -> None:
    small = EventLog(log.history.database, max_events=10, max_age=timedelta(hours=24))
    stream = "market:busy"
    await append(small, stream, TRIM_EVERY)  # the trim runs at every TRIM_EVERY-th event
    # All younger than max_age: nothing goes.
    assert len(await small.after(stream, 0, limit=1000)) == TRIM_EVERY
    await small.history.update_many({"stream": stream}, {"$inc": {"created_ms": -25 * 3600 * 1000}})
    await append(small, stream, TRIM_EVERY)
    # At the trim (seq 200) what is old AND beyond the last 10 goes (1..100); young ones stay.
    assert [e.seq for e in await small.after(stream, 0, limit=1000)] == list(range(101, 201))
    assert await small.current_seq(stream) == 200
    history = History(small)
    assert (await history.missed(stream, 150)).resync_seq == 200
    assert [e.seq for e in (await history.missed(stream, 192)).events] == list(range(193, 201))


async def test_the_newest_event_is_kept_however_old(log: EventLog) -> None:
    small = EventLog(log.history.database, max_events=1, max_age=timedelta(0))
    stream = "market:quiet"
    await append(small, stream, TRIM_EVERY)
    await small.history.update_many({"stream": stream}, {"$inc": {"created_ms": -25 * 3600 * 1000}})
    assert await small.current_seq(stream) == TRIM_EVERY  # numbering goes on from here, not from 1
    assert await append(small, stream, 1) == [TRIM_EVERY + 1]


async def test_an_old_ttl_index_is_dropped_on_upgrade(log: EventLog) -> None:
    await log.history.create_index("created_at", expireAfterSeconds=3600, name="created_ttl")
    await log.create_indexes()
    assert not [spec for spec in (await log.history.index_information()).values() if "expireAfterSeconds" in spec]


class Recorder:
    def __init__(self, *, fail: bool = False, hang: bool = False) -> None:
        self.fail, self.hang = fail, hang
        self.emitted: list[tuple[str, Any, str, str]] = []

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise ConnectionError("redis is down")
        self.emitted.append((event, data, namespace, room))


@pytest.mark.parametrize("log", ["nx-27017"], indirect=True)
async def test_publishing_never_fails_or_holds_up_the_caller(log: EventLog) -> None:
    metrics = HubMetrics()
    failing = Publisher(log, Recorder(fail=True), metrics)
    assert await failing.publish("market:m", "order:created", {"order": {}}) == 1  # stored, though not emitted
    failed = metric_value(metrics.exposition().decode(), "hub_events_publish_failed_total", event="order:created")
    assert failed == 1
    assert [e.seq for e in await log.after("market:m", 0, limit=10)] == [1]

    hanging = BackgroundEmitter(Recorder(hang=True), metrics, timeout=0.2)
    hanging.start()
    async with asyncio.timeout(1):  # the request path does not wait for the emit
        assert await Publisher(log, hanging, metrics).publish("market:m", "order:created", {"order": {}}) == 2
    await asyncio.sleep(0.4)  # the stuck emit timed out and was counted; the worker goes on
    working = Recorder()
    hanging.emitter = working
    await hanging.emit("order:created", {"seq": 3}, namespace="/dashboard", room="market:m")
    await hanging.close()
    assert working.emitted == [("order:created", {"seq": 3}, "/dashboard", "market:m")]
