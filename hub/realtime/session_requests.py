"""One request of each kind at a time per Engine.IO session.

Opening a session is what the per-IP rate limits count (handlers/middleware.py); the requests made
inside it (long-polling GETs and POSTs, the WebSocket upgrade) are not counted, so that one connection
costs one rate-limit round trip, not one per poll. What keeps those uncounted requests from being a
free channel: a session has at most one of each kind (method, transport) in flight, which is all the
Engine.IO protocol ever needs (a client polls again only once the previous poll answered, and posts
one batch at a time; Node's engine.io ends a session on such an overlap). Without it, one counted
session could hold any number of concurrent long-polls open, each a pending request in memory.
A request naming an unknown session is answered at once by engineio (400), so it holds nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class SessionRequests:
    def __init__(self) -> None:
        self._in_flight: set[tuple[str, str, str]] = set()

    def busy(self, sid: str, method: str, transport: str) -> bool:
        return (sid, method, transport) in self._in_flight

    @contextlib.contextmanager
    def one_at_a_time(self, sid: str, method: str, transport: str) -> Iterator[bool]:
        """True while this is the session's only request of its kind; False for an overlapping one."""
        key = (sid, method, transport)
        if key in self._in_flight:
            yield False
            return
        self._in_flight.add(key)
        try:
            yield True
        finally:
            self._in_flight.discard(key)
