"""The order event publisher: an OrderListener that numbers, stores and emits every order event.

For each order event, two streams: the market's (`market:{id}`, pushed on /dashboard) and the
customer's (`user:{id}`, pushed on /orders). Per stream: take the next seq from the atomic
counter, write the event to the history, then emit it to the stream's room (through Redis to
every instance when configured; in the hub through a BackgroundEmitter, so the request waits for
the history write only). Nothing here raises into the request that made the change: a
failure is logged and counted, and the history lets clients recover what they missed.

Two publishes to one stream on one instance run concurrently (two requests): the one with the
higher seq may finish its history write first. Emitting it at once would show clients a gap
(and make them replay), so a stream's events leave an instance in seq order: an event waits
until every lower seq this instance took for the stream is emitted or given up on. The request
never waits for that: it only queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable
from typing import Any, Protocol

from hub.realtime.streams import ORDER_CREATED, ORDER_UPDATED, market_stream, namespace_of, user_stream
from store.events import EventLog
from store.models import Order, OrderStatus

log = logging.getLogger(__name__)

DRAIN_SECONDS = 2.0


class Emitter(Protocol):
    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None: ...


class BackgroundEmitter:
    """Emits on one task, in the order given, off the request path: a Redis that hangs or is
    gone costs the request nothing. Bounded: past `limit` waiting emits, new ones are dropped
    (counted); like any lost emit, clients recover them from the history."""

    def __init__(self, emitter: Emitter, *, limit: int = 10_000, timeout: float = 3.0) -> None:
        self.emitter = emitter
        self.timeout = timeout
        self.failure_observers: list[Callable[[str], None]] = []
        self._queue: asyncio.Queue[tuple[str, Any, str, str]] = asyncio.Queue(limit)
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
            self._failed(event)

    async def _run(self) -> None:
        while True:
            event, data, namespace, room = await self._queue.get()
            try:
                await asyncio.wait_for(self.emitter.emit(event, data, namespace=namespace, room=room), self.timeout)
            except Exception:  # stored already: clients recover it from the history
                log.exception("event emit failed", extra={"event": event, "stream": room})
                self._failed(event)
            finally:
                self._queue.task_done()

    def _failed(self, event: str) -> None:
        for observer in self.failure_observers:
            observer(event)


# An event ready to go out, or None when its seq was given up on (not stored).
_Ready = tuple[str, dict[str, Any]] | None


class Publisher:
    def __init__(self, events: EventLog, emitter: Emitter) -> None:
        self.events = events
        self.emitter = emitter
        self.published = 0
        self.failures = 0
        self.published_observers: list[Callable[[str], None]] = []
        self.failure_observers: list[Callable[[str], None]] = []
        # Per stream: the seqs this instance took and has not emitted yet (a heap), those of them
        # that are ready, and whether an emit loop for the stream is running.
        self._taken: dict[str, list[int]] = {}
        self._ready: dict[str, dict[int, _Ready]] = {}
        self._emitting: set[str] = set()

    async def order_created(self, order: Order) -> None:
        await self._order_event(ORDER_CREATED, order, {})

    async def order_changed(self, order: Order, previous_status: OrderStatus) -> None:
        await self._order_event(ORDER_UPDATED, order, {"previous_status": previous_status.value})

    async def _order_event(self, event: str, order: Order, extra: dict[str, Any]) -> None:
        body = {"order": order.model_dump(mode="json"), **extra}
        await asyncio.gather(
            self.publish(market_stream(order.market_id), event, body),
            self.publish(user_stream(order.customer_id), event, body),
        )

    async def publish(self, stream: str, event: str, body: dict[str, Any]) -> int | None:
        """Number, store and emit one event; its seq, or None when it could not be stored."""
        try:
            seq = await self.events.next_seq(stream)
        except Exception:  # noqa: BLE001 - publishing never fails the caller's write
            self._failed(event, stream, "store")
            return None
        heapq.heappush(self._taken.setdefault(stream, []), seq)
        ready: _Ready = None
        try:
            payload = {"stream": stream, "seq": seq, **body}
            await self.events.append(stream, seq, event, payload)
            ready = (event, payload)
        except Exception:  # noqa: BLE001 - publishing never fails the caller's write
            self._failed(event, stream, "store")
        finally:
            # Also when cancelled: a seq left pending would hold up the stream's later events.
            self._ready.setdefault(stream, {})[seq] = ready
        await self._emit_in_order(stream)
        return seq if ready is not None else None

    async def _emit_in_order(self, stream: str) -> None:
        """Emit the stream's ready events while the lowest seq taken here is among them. One loop
        per stream: a publish that finds it running leaves its event to it."""
        if stream in self._emitting:
            return
        self._emitting.add(stream)
        try:
            taken, ready = self._taken[stream], self._ready[stream]
            while taken and taken[0] in ready:
                item = ready.pop(heapq.heappop(taken))
                if item is not None:
                    await self._emit(stream, *item)
        finally:
            self._emitting.discard(stream)
            if not self._taken.get(stream):
                self._taken.pop(stream, None)
                self._ready.pop(stream, None)

    async def _emit(self, stream: str, event: str, payload: dict[str, Any]) -> None:
        try:
            await self.emitter.emit(event, payload, namespace=namespace_of(stream), room=stream)
        except Exception:  # noqa: BLE001 - stored already: clients recover it from the history
            self._failed(event, stream, "emit")
            return
        self.published += 1
        for observer in self.published_observers:
            observer(event)

    def _failed(self, event: str, stream: str, step: str) -> None:
        self.failures += 1
        log.exception("event publish failed", extra={"event": event, "stream": stream, "step": step})
        for observer in self.failure_observers:
            observer(event)
