"""The order event publisher: an OrderListener that numbers, stores and emits every order event.

For each order event, two streams: the market's (`market:{id}`, pushed on /dashboard) and the
customer's (`user:{id}`, pushed on /orders). Per stream: number and store the event in
the history (one write, store/events.py), then emit it to the stream's room (through Redis to
every instance when configured; in the hub through a BackgroundEmitter, so the request waits for
the history write only). Nothing here raises into the request that made the change: a failure is
logged and counted, and the history lets clients recover what they missed.

Order events come from the order's outbox. Why each is stored once per stream whoever publishes it, in seq
order, and re-emitted after a crash: docs/architecture.md, "Events: an outbox in the order document".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, runtime_checkable

from hub.metrics import HubMetrics
from hub.realtime.streams import ORDER_UPDATED, market_stream, namespace_of, user_stream
from hub.schemas.public import OrderCreatedPayload, OrderPublic, OrderUpdatedPayload
from store.events import EventLog, NewEvent
from store.models import Order, OrderStatus, PendingEvent

log = logging.getLogger(__name__)

DRAIN_SECONDS = 2.0
# A write that carries an earlier write's unpublished event waits this long for that writer (most
# likely alive and a few milliseconds from storing it) before publishing the event itself.
EARLIER_WRITER_GRACE_SECONDS = 0.5
EARLIER_WRITER_POLL_SECONDS = 0.02
# At most this many queued emits go out together (one Redis round trip on one Redis).
EMIT_BATCH = 64


def event_key(stream: str, order_id: str, pending: PendingEvent) -> str:
    """What makes an order event one event: the same key is never stored twice in the history."""
    return f"{stream}|{order_id}|{pending.version}|{pending.name}"


# event, data, namespace, room
Emit = tuple[str, Any, str, str]


class Emitter(Protocol):
    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None: ...


@runtime_checkable
class BatchEmitter(Emitter, Protocol):
    async def emit_many(self, emits: Sequence[Emit]) -> None:
        """Emit each, in the order given; what goes to other instances may leave together."""
        ...


class BackgroundEmitter:
    """Emits on one task, in the order given, off the request path: a Redis that hangs or is
    gone costs the request nothing. What is queued when the task wakes goes out together (a
    BatchEmitter sends it in one Redis round trip: both events of a placed order, or a busy
    moment's events). Bounded: past `limit` waiting emits, new ones are dropped (counted); like
    any lost emit, clients recover them from the history."""

    def __init__(self, emitter: Emitter, metrics: HubMetrics, *, limit: int = 10_000, timeout: float = 3.0) -> None:
        self.emitter = emitter
        self.metrics = metrics
        self.timeout = timeout
        self._queue: asyncio.Queue[Emit] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Let what is queued go out (for up to DRAIN_SECONDS), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), DRAIN_SECONDS)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        try:
            self._queue.put_nowait((event, data, namespace, room))
        except asyncio.QueueFull:
            log.error("emit queue full; event left to the history", extra={"event": event, "stream": room})
            self.metrics.event_publish_failed(event)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < EMIT_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow close()'s cancel.
                async with asyncio.timeout(self.timeout):
                    await self._emit(batch)
            except Exception:  # stored already: clients recover them from the history
                for event, _, _, room in batch:
                    log.exception("event emit failed", extra={"event": event, "stream": room})
                    self.metrics.event_publish_failed(event)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _emit(self, batch: list[Emit]) -> None:
        if len(batch) > 1 and isinstance(self.emitter, BatchEmitter):
            await self.emitter.emit_many(batch)
            return
        for event, data, namespace, room in batch:
            await self.emitter.emit(event, data, namespace=namespace, room=room)


class Publisher:
    def __init__(self, events: EventLog, emitter: Emitter, metrics: HubMetrics) -> None:
        self.events = events
        self.emitter = emitter
        self.metrics = metrics
        # Per stream being written: its lock and how many publishes hold or wait for it.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    # OrderListener, for processes that publish orders written elsewhere (hub/realtime/external.py)

    async def order_created(self, order: Order) -> None:
        pending = PendingEvent(name="order:created", version=order.version)
        body = OrderCreatedPayload(order=OrderPublic.of(order)).model_dump(mode="json")
        await self._order_event(order, pending, body, check=True)

    async def order_changed(self, order: Order, previous_status: OrderStatus) -> None:
        pending = PendingEvent(name="order:updated", version=order.version)
        body = OrderUpdatedPayload(order=OrderPublic.of(order), previous_status=previous_status).model_dump(mode="json")
        await self._order_event(order, pending, body, check=True)

    async def publish_pending(self, order: Order, *, fresh_version: int | None) -> bool:
        """Publish the order's outbox, oldest version first; True when every event is in the history.

        `fresh_version`: the version the caller has just written, whose events nobody else can
        have published yet (no look-up first); None in a repair, which emits again what it finds
        stored. Events of earlier versions were left by another writer: waited for a moment, then
        published unless stored."""
        for pending in sorted(order.outbox, key=lambda pending: pending.version):
            fresh = pending.version == fresh_version
            grace = EARLIER_WRITER_GRACE_SECONDS if fresh_version is not None and not fresh else 0.0
            body = self.payload(order, pending)
            repair = fresh_version is None
            if not await self._order_event(order, pending, body, check=not fresh, grace=grace, reemit=repair):
                return False  # a later version must not be numbered before this one
        return True

    @staticmethod
    def payload(order: Order, pending: PendingEvent) -> dict[str, Any]:
        """The event's payload, as the order was when its `version` was written (its own history names the
        previous status)."""
        # A writer's own event: the order as it is (no copy of it first).
        current = pending.version == order.version == len(order.status_history)
        at_version = OrderPublic.of(order if current else order.at_version(pending.version))
        if pending.name == ORDER_UPDATED:
            previous = order.status_history[pending.version - 2].status
            return OrderUpdatedPayload(order=at_version, previous_status=previous).model_dump(mode="json")
        return OrderCreatedPayload(order=at_version).model_dump(mode="json")

    async def _order_event(
        self,
        order: Order,
        pending: PendingEvent,
        body: dict[str, Any],
        *,
        check: bool,
        grace: float = 0.0,
        reemit: bool = False,
    ) -> bool:
        """One order event on the market's and the customer's stream."""
        streams = (market_stream(order.market_id), user_stream(order.customer_id))
        if not check:  # the writer's own event: nobody else can have stored it yet
            events = [NewEvent(stream, pending.name, body, event_key(stream, order.id, pending)) for stream in streams]
            return await self.publish_together(events)
        stored = await asyncio.gather(
            *(self.publish_once(stream, pending.name, body, key=event_key(stream, order.id, pending), check=check,
                                grace=grace, reemit=reemit) for stream in streams)
        )  # fmt: skip
        return all(stored)

    async def publish_once(
        self,
        stream: str,
        event: str,
        body: dict[str, Any],
        *,
        key: str,
        check: bool,
        grace: float,
        reemit: bool = False,
    ) -> bool:
        """Publish unless an event with `key` is stored already (then emit the stored one again
        when `reemit`); True when it is in the history."""
        try:
            if check and await self._stored_within(key, grace):
                if reemit:
                    await self._emit_stored(stream, key)
                return True
            if await self.publish(stream, event, body, key=key) is not None:
                return True
        except Exception:  # noqa: BLE001 - publishing never fails the caller's write
            self._failed(event, stream, "store")
            return False
        with contextlib.suppress(Exception):  # not stored: a failure (counted) or stored already
            return await self.events.has(key)
        return False

    async def publish_together(self, events: list[NewEvent]) -> bool:
        """Number, store (one write for all: store/events.py) and emit events of distinct streams;
        True when every one of them is in the history."""
        async with contextlib.AsyncExitStack() as locks:
            for stream in sorted({new.stream for new in events}):  # one order of locking: no deadlock
                await locks.enter_async_context(self._stream_lock(stream))
            try:
                stored = await self.events.append_many(events)
            except Exception:  # noqa: BLE001 - publishing never fails the caller's write
                for new in events:
                    self._failed(new.event, new.stream, "store")
                return False
            for new, event in zip(events, stored, strict=True):
                if event is not None:  # None: stored meanwhile by another instance, which emits it
                    await self._emit(new.stream, new.event, event.payload)
        return True

    async def _stored_within(self, key: str, grace: float) -> bool:
        deadline = asyncio.get_running_loop().time() + grace
        while not await self.events.has(key):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(EARLIER_WRITER_POLL_SECONDS)
        return True

    async def publish(self, stream: str, event: str, body: dict[str, Any], *, key: str | None = None) -> int | None:
        """Number, store and emit one event; its seq, or None when it was not stored (it could not
        be, or an event with the same `key` is stored already)."""
        async with self._stream_lock(stream):
            try:
                stored = await self.events.append(stream, event, body, key=key)
            except Exception:  # noqa: BLE001 - publishing never fails the caller's write
                self._failed(event, stream, "store")
                return None
            if stored is None:  # published meanwhile by another instance, which emits it
                return None
            await self._emit(stream, event, stored.payload)
            return stored.seq

    async def _emit_stored(self, stream: str, key: str) -> None:
        """Emit a stored event again, as stored (same seq), in turn with the stream's new events;
        only while it is the stream's newest: a client that missed it and has seen a later one
        noticed the gap and replays it, and a second copy costs a client that has it a duplicate."""
        async with self._stream_lock(stream):
            stored = await self.events.by_key(key)
            if stored is not None and await self.events.current_seq(stream) == stored.seq:
                await self._emit(stream, stored.event, stored.payload)

    @contextlib.asynccontextmanager
    async def _stream_lock(self, stream: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(stream) or (asyncio.Lock(), 0)
        self._locks[stream] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[stream]
            if users == 1:
                del self._locks[stream]
            else:
                self._locks[stream] = (lock, users - 1)

    async def _emit(self, stream: str, event: str, payload: dict[str, Any]) -> None:
        try:
            await self.emitter.emit(event, payload, namespace=namespace_of(stream), room=stream)
        except Exception:  # noqa: BLE001 - stored already: clients recover it from the history
            self._failed(event, stream, "emit")
            return
        self.metrics.event_published(event)

    def _failed(self, event: str, stream: str, step: str) -> None:
        log.exception("event publish failed", extra={"event": event, "stream": stream, "step": step})
        self.metrics.event_publish_failed(event)
