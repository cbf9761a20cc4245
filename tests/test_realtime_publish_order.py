"""Fan-out details: a stream's events leave an instance in seq order (even when concurrent publishes store them
out of order), and Redis messages no local client needs are dropped before they are decoded."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from hub.realtime.publisher import Publisher
from hub.realtime.server import HubRedisManager


class SlowFirstLog:
    """An event log whose first append of a stream finishes after the second one (or fails)."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.fail_first = fail_first
        self.seq = 0
        self.first_may_finish = asyncio.Event()
        self.stored: list[int] = []

    async def next_seq(self, stream: str) -> int:
        self.seq += 1
        return self.seq

    async def append(self, stream: str, seq: int, event: str, payload: dict[str, Any], **_: Any) -> bool:
        if seq == 1:
            await asyncio.wait_for(self.first_may_finish.wait(), 5)
            if self.fail_first:
                raise ConnectionError("database went away")
        else:
            self.first_may_finish.set()
        self.stored.append(seq)
        return True


class Recorder:
    def __init__(self) -> None:
        self.emitted: list[int] = []

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        self.emitted.append(data["seq"])


async def test_a_later_seq_stored_first_is_emitted_after_the_earlier_one() -> None:
    log, emitter = SlowFirstLog(), Recorder()
    publisher = Publisher(log, emitter)  # type: ignore[arg-type]
    first = asyncio.create_task(publisher.publish("market:m", "order:created", {"order": {}}))
    await asyncio.sleep(0)  # the first takes seq 1 and waits in its append
    second = await asyncio.wait_for(publisher.publish("market:m", "order:created", {"order": {}}), 5)
    assert second == 2
    assert log.stored[0] == 2  # stored out of order ...
    assert await asyncio.wait_for(first, 5) == 1
    assert emitter.emitted == [1, 2]  # ... emitted in order


async def test_a_seq_that_could_not_be_stored_does_not_hold_up_the_next() -> None:
    log, emitter = SlowFirstLog(fail_first=True), Recorder()
    publisher = Publisher(log, emitter)  # type: ignore[arg-type]
    first = asyncio.create_task(publisher.publish("market:m", "order:created", {"order": {}}))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(publisher.publish("market:m", "order:created", {"order": {}}), 5) == 2
    assert await asyncio.wait_for(first, 5) is None
    assert emitter.emitted == [2]
    assert publisher.failures == 1


async def test_redis_messages_for_rooms_without_local_clients_are_dropped_undecoded() -> None:
    manager = HubRedisManager("redis://127.0.0.1:6379/0", channel="unused-by-this-test")
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
