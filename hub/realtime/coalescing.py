"""Coalesced pushes per key (a market): a push starts at least `interval` after the previous one
ended, and at once when that is longer ago, so a key is pushed at most 1/`interval` times a second
and a change within `interval` (plus one push's time) however many come meanwhile.

Shared by the dashboards' stats (hub/realtime/stats.py) and the storefronts' live stock
(hub/realtime/catalog.py). What a key accumulated between two pushes (the ids of the products that
changed; nothing for stats) is handed to the push, which reads current values: a push never
carries a value older than the change that caused it, and a change made during a push marks the
key again for the next one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class CoalescedPushes(Generic[Item]):
    def __init__(self, push: Callable[[str, set[Item]], Awaitable[None]], *, interval: float) -> None:
        self.push = push
        self.interval = interval
        self._pending: dict[str, set[Item]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._last_push: dict[str, float] = {}

    def mark(self, key: str, items: Iterable[Item] = ()) -> None:
        """The key changed (and these items of it): push it soon."""
        self._pending.setdefault(key, set()).update(items)
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            while key in self._pending:
                wait = self._last_push.get(key, -math.inf) + self.interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                items = self._pending.pop(key)
                try:
                    await self.push(key, items)
                finally:  # from the end of a push: its emit and the next are `interval` apart at least
                    self._last_push[key] = loop.time()
        finally:
            self._tasks.pop(key, None)
