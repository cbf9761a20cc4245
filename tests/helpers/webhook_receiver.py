"""A real HTTP receiver for webhook tests, on 127.0.0.1 only: it records every request (headers, body,
when, how many requests for the same `webhook-id` were open at that moment) and answers as scripted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from store.embedded import free_port

HANG = -1  # a scripted answer: never answer (until the receiver stops)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    open_for_id: int  # requests with this webhook-id open at once, this one included

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """`answers(request_number_for_this_id) -> status or HANG`; `delay` before answering."""

    answers: Callable[[int], int] = lambda _: 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _open: Counter[str] = field(default_factory=Counter)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        webhook_id = request.headers.get("webhook-id", "")
        self._open[webhook_id] += 1
        try:
            number = sum(1 for item in self.received if item.webhook_id == webhook_id) + 1
            headers = {key.lower(): value for key, value in request.headers.items()}
            entry = Received(headers, await request.read(), time.monotonic(), self._open[webhook_id])
            self.received.append(entry)
            self._changed.set()
            answer = self.answers(number)
            if answer == HANG:
                await self._stop.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if 300 <= answer < 400:  # a redirect to this very receiver: followed, it would arrive again
                return web.Response(status=answer, headers={"Location": self.url})
            return web.Response(status=answer if answer != HANG else 599)
        finally:
            self._open[webhook_id] -= 1

    async def wait_for(self, predicate: Callable[[list[Received]], bool], *, timeout: float = 15) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.received):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"receiver: timed out after {timeout}s with {len(self.received)} requests")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        return self.received

    async def count(self, n: int, *, timeout: float = 15) -> list[Received]:
        return await self.wait_for(lambda received: len(received) >= n, timeout=timeout)


@contextlib.asynccontextmanager
async def receiving(answers: Callable[[int], int] = lambda _: 200, *, delay: float = 0.0) -> AsyncIterator[Receiver]:
    receiver = Receiver(answers=answers, delay=delay, port=free_port())
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    try:
        yield receiver
    finally:
        receiver._stop.set()
        await runner.cleanup()
