"""The event counters and history on every backend (nx-27017, mongomock-motor, real MongoDB when
MONGODB_URL is set), recovery's rules, and that publishing never fails or holds up its caller."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from hub.realtime.history import History, Replay
from hub.realtime.publisher import BackgroundEmitter, Publisher
from store.client import connect
from store.events import TRIM_EVERY, EventLog
from tests.conftest import NxServer

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


async def append(log: EventLog, stream: str, count: int) -> list[int]:
    seqs = []
    for _ in range(count):
        seq = await log.next_seq(stream)
        await log.append(stream, seq, "order:created", {"stream": stream, "seq": seq, "order": {"id": str(seq)}})
        seqs.append(seq)
    return seqs


async def test_counters_are_per_stream_and_atomic(log: EventLog) -> None:
    seqs = await asyncio.gather(*(log.next_seq("market:a") for _ in range(20)))
    assert sorted(seqs) == list(range(1, 21))
    assert await log.next_seq("market:b") == 1
    assert await log.current_seq("market:a") == 20
    assert await log.current_seq("market:none") == 0


async def test_history_reads_back_in_order_and_recovery_rules(log: EventLog) -> None:
    await append(log, "user:x", 5)
    await append(log, "user:y", 2)
    events = await log.after("user:x", 2, limit=10)
    assert [e.seq for e in events] == [3, 4, 5]
    assert events[0].payload == {"stream": "user:x", "seq": 3, "order": {"id": "3"}}

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


async def test_history_is_trimmed_to_its_size(log: EventLog) -> None:
    small = EventLog(log.history.database, max_events=10, max_age=timedelta(hours=24))
    stream = "market:busy"
    await append(small, stream, TRIM_EVERY)  # the trim runs at every TRIM_EVERY-th event
    assert [e.seq for e in await small.after(stream, 0, limit=1000)] == list(range(91, 101))
    history = History(small)
    assert (await history.missed(stream, 50)).resync_seq == 100
    assert [e.seq for e in (await history.missed(stream, 92)).events] == list(range(93, 101))


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
    failing = Publisher(log, Recorder(fail=True))
    failures: list[str] = []
    failing.failure_observers.append(failures.append)
    assert await failing.publish("market:m", "order:created", {"order": {}}) == 1  # stored, though not emitted
    assert failures == ["order:created"]
    assert [e.seq for e in await log.after("market:m", 0, limit=10)] == [1]

    hanging = BackgroundEmitter(Recorder(hang=True), timeout=0.2)
    hanging.start()
    async with asyncio.timeout(1):  # the request path does not wait for the emit
        assert await Publisher(log, hanging).publish("market:m", "order:created", {"order": {}}) == 2
    await asyncio.sleep(0.4)  # the stuck emit timed out and was counted; the worker goes on
    working = Recorder()
    hanging.emitter = working
    await hanging.emit("order:created", {"seq": 3}, namespace="/dashboard", room="market:m")
    await hanging.close()
    assert working.emitted == [("order:created", {"seq": 3}, "/dashboard", "market:m")]
