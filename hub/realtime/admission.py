"""Admission of Socket.IO namespace handshakes: a bounded number at once, a bounded number waiting, and
none started while the event loop is behind.

A namespace handshake is the expensive part of a connection: the token is checked against the
database, the rooms are joined (and their Redis channels subscribed), the missed events are read
from the history and replayed. When an instance stops, its clients all come to the others at
once (a reconnect storm); without a bound, thousands of handshakes would share the event loop
with the clients already connected and their latency would suffer. With it, at most `limit`
handshakes run at once, and a new one starts only while the loop keeps up (its lag, measured by a
timer, under `max_lag` seconds; one handshake may always run, so a loop busy with other work does not
starve connections). Up to `queue` more wait their turn in arrival order; any beyond are refused with
`connect_error` `{"message": "busy"}`: the client retries after a randomized delay (static/js/live.js).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hub.metrics import HubMetrics

BUSY = "busy"
LAG_TICK_SECONDS = 0.02


class LoopLag:
    """How late a 20 ms timer fires: the event loop's backlog. Ticks only while someone asks."""

    def __init__(self) -> None:
        self.lag = 0.0
        self._expected = 0.0
        self._ticking = False
        self._calm: asyncio.Future[None] | None = None

    async def below(self, max_lag: float) -> None:
        """Return at the first tick with the loop less than `max_lag` seconds behind."""
        self._start()
        while self.lag >= max_lag:
            if self._calm is None or self._calm.done():
                self._calm = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._calm)

    def _start(self) -> None:
        if not self._ticking:
            self._ticking = True
            self.lag = float("inf")  # unknown until the first tick
            loop = asyncio.get_running_loop()
            self._expected = loop.time() + LAG_TICK_SECONDS
            loop.call_later(LAG_TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self.lag = max(0.0, loop.time() - self._expected)
        calm, self._calm = self._calm, None
        if calm is not None and not calm.done():
            calm.set_result(None)  # waiters look at the new lag
        if calm is None:
            self._ticking = False  # nobody waited since the last tick: stop until asked again
            return
        self._expected = loop.time() + LAG_TICK_SECONDS
        loop.call_later(LAG_TICK_SECONDS, self._tick)


class HandshakeGate:
    def __init__(
        self, *, limit: int, queue: int, max_lag: float | None = None, metrics: HubMetrics | None = None
    ) -> None:
        """`metrics`: where refusals and the waiting handshakes are counted (none for a gate tested alone)."""
        self.metrics = metrics
        self.limit = limit
        self.queue = queue
        self.max_lag = max_lag
        self.running = 0
        self.waiting = 0
        self.refused = 0
        self.admitted = 0
        self.peak_waiting = 0
        self._slots = asyncio.Semaphore(limit)
        self._turn = asyncio.Lock()  # arrival order among those waiting for the loop to catch up
        self._lag = LoopLag()

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[bool]:
        """Yields True once the handshake may run; False when it must be refused (queue full)."""
        if (self._slots.locked() or self._turn.locked()) and self.waiting >= self.queue:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.socket_handshakes_refused.inc()
            yield False
            return
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        if self.metrics is not None:
            self.metrics.socket_handshakes_waiting.inc()
        try:
            await self._slots.acquire()
            try:
                async with self._turn:
                    if self.running and self.max_lag is not None:
                        await self._lag.below(self.max_lag)
                    self.running += 1
            except BaseException:
                self._slots.release()
                raise
        finally:
            self.waiting -= 1
            if self.metrics is not None:
                self.metrics.socket_handshakes_waiting.dec()
        self.admitted += 1
        try:
            yield True
        finally:
            self.running -= 1
            self._slots.release()
