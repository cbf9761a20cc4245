"""The order event publisher: an OrderListener that numbers, stores and emits every order event.

For each order event, two streams: the market's (`market:{id}`, pushed on /dashboard) and the
customer's (`user:{id}`, pushed on /orders). Per stream: take the next seq from the atomic
counter, write the event to the history, then emit it to the stream's room (through Redis to
every instance when configured; in the hub through a BackgroundEmitter, so the request waits for
the history write only). Nothing here raises into the request that made the change: a
failure is logged and counted, and the history lets clients recover what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class Publisher:
    def __init__(self, events: EventLog, emitter: Emitter) -> None:
        self.events = events
        self.emitter = emitter
        self.published = 0
        self.failures = 0
        self.published_observers: list[Callable[[str], None]] = []
        self.failure_observers: list[Callable[[str], None]] = []

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
            payload = {"stream": stream, "seq": seq, **body}
            await self.events.append(stream, seq, event, payload)
        except Exception:  # noqa: BLE001 - publishing never fails the caller's write
            self._failed(event, stream, "store")
            return None
        try:
            await self.emitter.emit(event, payload, namespace=namespace_of(stream), room=stream)
        except Exception:  # noqa: BLE001 - stored already: clients recover it from the history
            self._failed(event, stream, "emit")
            return seq
        self.published += 1
        for observer in self.published_observers:
            observer(event)
        return seq

    def _failed(self, event: str, stream: str, step: str) -> None:
        self.failures += 1
        log.exception("event publish failed", extra={"event": event, "stream": stream, "step": step})
        for observer in self.failure_observers:
            observer(event)
