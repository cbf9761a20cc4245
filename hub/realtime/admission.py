"""Admission of Socket.IO namespace handshakes: a bounded number at once, a bounded number waiting.

A namespace handshake is the expensive part of a connection: the token is checked against the
database, the rooms are joined (and their Redis channels subscribed), the missed events are read
from the history and replayed. When an instance stops, its clients all come to the others at
once (a reconnect storm); without a bound, thousands of handshakes would share the event loop
with the clients already connected and their latency would suffer. With it, `limit` handshakes
run at once, up to `queue` more wait their turn in arrival order, and any beyond are refused with
`connect_error` `{"message": "busy"}`: the client retries after a randomized delay (static/js/live.js).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

BUSY = "busy"


class HandshakeGate:
    def __init__(self, *, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.running = 0
        self.waiting = 0
        self.refused = 0
        self.admitted = 0
        self.peak_waiting = 0
        self._slots = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[bool]:
        """Yields True once the handshake may run; False when it must be refused (queue full)."""
        if self._slots.locked() and self.waiting >= self.queue:
            self.refused += 1
            yield False
            return
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        self.admitted += 1
        try:
            yield True
        finally:
            self.running -= 1
            self._slots.release()
