"""Draining on shutdown: which requests are still in flight, and what to do first when it starts.

aiohttp's own graceful shutdown (run_app) closes every connection for reading at once, so a
request whose body is still arriving at SIGTERM never gets the rest of it and is cut off after
the shutdown timeout. Draining first — listener closed, requests in flight allowed to finish,
keep-alive connections told to close — and only then handing over to aiohttp avoids that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

log = logging.getLogger(__name__)

DrainHook = Callable[[], Awaitable[object]]


class Drain:
    def __init__(self, hooks: Sequence[DrainHook] = ()) -> None:
        self.in_flight = 0
        self.draining = False
        self.hooks = tuple(hooks)  # run once when draining starts, e.g. disconnect Socket.IO clients
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Around one request that shutdown should wait for."""
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def start(self) -> None:
        """Begin draining (once): run the hooks; each failure is logged, none stops the others."""
        if self.draining:
            return
        self.draining = True
        for hook in self.hooks:
            try:
                await hook()
            except Exception:  # shutdown goes on whatever one hook does
                log.exception("drain hook failed")

    async def wait_idle(self, seconds: float) -> bool:
        """True when no tracked request is left; False when `seconds` passed first."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown timeout: requests still in flight", extra={"in_flight": self.in_flight})
            return False
        return True
