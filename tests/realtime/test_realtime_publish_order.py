"""Fan-out details: one instance writes a stream's events one at a time and they leave it in seq order,
and Redis messages no local client needs are dropped before they are decoded."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from hub.metrics import HubMetrics
from hub.realtime.publisher import Publisher
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
