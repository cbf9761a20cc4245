"""Admission of Socket.IO namespace handshakes: a bounded number at once and a bounded number waiting.

A namespace handshake is the expensive part of a connection: the token is checked against the
database, the rooms are joined (and their Redis channels subscribed), the missed events are read
from the history and replayed. When an instance stops, its clients all come to the others at
once (a reconnect storm); without a bound, thousands of handshakes would share the event loop
with the clients already connected and their latency would suffer. With it, at most `limit`
handshakes run at once; up to `queue` more wait their turn in arrival order, each at most `max_wait`
seconds; any beyond, and any that waited that long, are refused with `connect_error` `{"message": "busy"}`:
the client retries after a randomized delay (static/js/live.js). The wait is bounded below the clients'
connect timeout (socket.io-client's `timeout`, 10 s in live.js): past it the client has given up and
retries anyway, and a handshake run for it then would be work for nobody that delays everyone behind it.

A handshake runs in its WebSocket's reader (python-socketio handles CONNECT inline): when the client
gives up and closes the connection, its waiting or running handshake is cancelled with the reader. When
the server ends the session instead (no pong read: the reader is busy here), it is not; HubServer then
skips it once admitted, or ends the connection it made (hub/realtime/server.py).

There is deliberately no rule on the event loop's lag (an earlier opt-in `SOCKET_HANDSHAKE_MAX_LAG_MS`):
a timer's lateness also counts the CPU other processes take, and a gate that lets one handshake run
while the loop lags admits at the rate of a handshake's round trips, not of its CPU. Under load
admission fell below the clients' arrival rate, waits passed the clients' connect timeout, and
their retries (ungated WebSocket and Engine.IO work) kept the loop lagging: storms did not finish
(bench/README.md, "Reconnect storm").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hub.metrics import HubMetrics

BUSY = "busy"


class HandshakeGate:
    def __init__(self, *, limit: int, queue: int, max_wait: float, metrics: HubMetrics | None = None) -> None:
        """`metrics`: where refusals and the waiting handshakes are counted (none for a gate tested alone)."""
        self.metrics = metrics
        self.limit = limit
        self.queue = queue
        self.max_wait = max_wait
        self.running = 0
        self.waiting = 0
        self.refused = 0
        self.admitted = 0
        self.peak_waiting = 0
        self._slots = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[bool]:
        """Yields True once the handshake may run; False when it is refused (the queue full, or waited too long)."""
        if not (self._slots.locked() and self.waiting >= self.queue) and await self._wait_for_a_slot():
            self.admitted += 1
        else:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.socket_handshakes_refused.inc()
            yield False
            return
        try:
            yield True
        finally:
            self.running -= 1
            self._slots.release()

    async def _wait_for_a_slot(self) -> bool:
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        if self.metrics is not None:
            self.metrics.socket_handshakes_waiting.inc()
        try:
            async with asyncio.timeout(self.max_wait):
                await self._slots.acquire()
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1
            if self.metrics is not None:
                self.metrics.socket_handshakes_waiting.dec()
        self.running += 1
        return True
