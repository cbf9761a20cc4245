"""Fan-out details: one instance writes a stream's events one at a time and they leave it in seq order
(what is queued together goes to Redis in one round trip), and Redis messages no local client needs are
dropped before they are decoded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from hub.metrics import HubMetrics
from hub.realtime.publisher import BackgroundEmitter, Emit, Publisher
from hub.realtime.redis_manager import HubRedisManager
from store.events import StoredEvent
from tests.helpers.api import metric_value


class SlowFirstLog:
    """An event log whose first append of a stream is slow (or fails)."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.seq = 0
        self.first_may_finish = asyncio.Event()
        self.stored: list[int] = []

    async def append(self, stream: str, event: str, body: dict[str, Any], **_: Any) -> StoredEvent | None:
        self.calls += 1
        if self.calls == 1:
            await asyncio.wait_for(self.first_may_finish.wait(), 5)
            if self.fail_first:
                raise ConnectionError("database went away")
        self.seq += 1
        self.stored.append(self.seq)
        return StoredEvent(stream=stream, seq=self.seq, event=event, payload={"stream": stream, "seq": self.seq})


class Recorder:
    def __init__(self) -> None:
        self.emitted: list[int] = []

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        self.emitted.append(data["seq"])


async def test_one_instance_writes_a_stream_one_event_at_a_time_and_emits_in_order() -> None:
    log, emitter = SlowFirstLog(), Recorder()
    publisher = Publisher(log, emitter, HubMetrics())  # type: ignore[arg-type]
    first = asyncio.create_task(publisher.publish("market:m", "order:created", {"order": {}}))
    await asyncio.sleep(0)  # the first is in its append
    second = asyncio.create_task(publisher.publish("market:m", "order:created", {"order": {}}))
    other_stream = await asyncio.wait_for(publisher.publish("market:o", "order:created", {"order": {}}), 5)
    assert other_stream == 1 and log.calls == 2  # another stream is not held up; this one waits its turn
    log.first_may_finish.set()
    assert await asyncio.wait_for(first, 5) == 2
    assert await asyncio.wait_for(second, 5) == 3
    assert emitter.emitted == [1, 2, 3]
    assert not publisher._locks  # nothing kept for streams no longer written


async def test_an_event_that_could_not_be_stored_does_not_hold_up_the_next() -> None:
    log, emitter = SlowFirstLog(fail_first=True), Recorder()
    publisher = Publisher(log, emitter, HubMetrics())  # type: ignore[arg-type]
    first = asyncio.create_task(publisher.publish("market:m", "order:created", {"order": {}}))
    await asyncio.sleep(0)
    second = asyncio.create_task(publisher.publish("market:m", "order:created", {"order": {}}))
    log.first_may_finish.set()
    assert await asyncio.wait_for(first, 5) is None
    assert await asyncio.wait_for(second, 5) == 1  # no number was used up by the failure
    assert emitter.emitted == [1]
    failed = metric_value(
        publisher.metrics.exposition().decode(), "hub_events_publish_failed_total", event="order:created"
    )
    assert failed == 1


async def test_redis_messages_for_rooms_without_local_clients_are_dropped_undecoded() -> None:
    manager = HubRedisManager("redis://127.0.0.1:6379/0", channel="unused-by-this-test", metrics=HubMetrics())
    manager.rooms = {"/dashboard": {"market:here": {"sid1": "eio1"}}}

    def message(room: Any, host_id: str = "another-instance", namespace: str = "/dashboard") -> bytes:
        data = [{"stream": "market:elsewhere", "room": "market:here", "namespace": "/dashboard"}]
        return orjson.dumps({"method": "emit", "event": "order:created", "data": data, "binary": False,
                             "namespace": namespace, "room": room, "skip_sid": None, "callback": None,
                             "host_id": host_id})  # fmt: skip

    assert manager.wanted(message("market:here"))
    assert not manager.wanted(message("market:elsewhere"))  # a room named inside the data does not count
    assert not manager.wanted(message("market:here", namespace="/orders"))
    assert not manager.wanted(message("market:here", host_id=manager.host_id))  # delivered locally already
    assert manager.wanted(message(None))  # the whole namespace: decoded as usual
    assert manager.wanted(message('market:"odd"'))  # escapes: decoded as usual
    assert manager.wanted(b'{"method":"enter_room","sid":"s","namespace":"/dashboard","room":"x"}')


class CountingConnection(aioredis.Connection):
    """Counts the socket writes that carry SPUBLISH (redis-py's `connection_class` option)."""

    spublish_writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, (bytes, str)) else list(command)
        if any(b"SPUBLISH" in (chunk.encode() if isinstance(chunk, str) else bytes(chunk)) for chunk in chunks):
            CountingConnection.spublish_writes += 1
        await super().send_packed_command(chunks, check_health)


async def test_emits_made_together_reach_the_room_channels_in_order_in_one_round_trip() -> None:
    url = "redis://127.0.0.1:6379/0"
    manager = HubRedisManager(
        url, channel=f"test-{uuid.uuid4().hex[:12]}", metrics=HubMetrics(), write_only=True,
        redis_options={"connection_class": CountingConnection},
    )  # fmt: skip
    listener = aioredis.Redis.from_url(url)
    pubsub = listener.pubsub()
    market, user = manager.room_channel("/dashboard", "market:m"), manager.room_channel("/orders", "user:u")
    try:
        await pubsub.ssubscribe(market, user)
        await manager.emit("warm-up", {"seq": 0}, namespace="/dashboard", room="market:m")  # connects
        CountingConnection.spublish_writes = 0
        async with manager.publishing_together():
            await manager.emit("order:created", {"seq": 1}, namespace="/dashboard", room="market:m")
            await manager.emit("order:created", {"seq": 1}, namespace="/orders", room="user:u")
            await manager.emit("order:updated", {"seq": 2}, namespace="/dashboard", room="market:m")
        assert CountingConnection.spublish_writes == 1
        received: list[tuple[str, Any]] = []
        async with asyncio.timeout(5):
            while len(received) < 4:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    body = orjson.loads(message["data"])
                    received.append((message["channel"].decode(), body["data"][0]["seq"]))
        assert received == [(market, 0), (market, 1), (user, 1), (market, 2)]
        assert manager.publish_failures == 0
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py's untyped method
        await listener.aclose()
        await manager.aclose()


class BatchRecorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        self.batches.append([data["seq"]])

    async def emit_many(self, emits: Sequence[Emit]) -> None:
        self.batches.append([data["seq"] for _, data, _, _ in emits])


async def test_what_is_queued_when_the_emitter_wakes_goes_out_together_in_order() -> None:
    recorder = BatchRecorder()
    emitter = BackgroundEmitter(recorder, HubMetrics())
    emitter.start()
    for seq in (1, 2, 3):  # queued before the emitter's task runs, as a writer's events are
        await emitter.emit("order:created", {"seq": seq}, namespace="/dashboard", room="market:m")
    await emitter.close()
    assert recorder.batches == [[1, 2, 3]]
