"""Timers shared by the connections whose deadline falls in the same second.

An event-loop timer per idle connection (its handle, libuv timer and copied context: ~0.6-0.8 KB) is
memory at tens of thousands of connections; the deadlines kept per connection (the next ping, the
pong it waits for, the token's expiry) are whole-second matters, so one timer per second serves them
all. A callback runs up to a second after its delay.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)


class TimerWheel:
    def __init__(self) -> None:
        self._due: dict[int, dict[Hashable, Callable[[], object]]] = {}

    def call_later(self, delay: float, key: Hashable, callback: Callable[[], object]) -> int:
        """Run `callback` in `delay` seconds (rounded up to the loop's next whole second). Returns the
        second, which with `key` cancels it; a key scheduled again for the same second replaces its
        callback."""
        loop = asyncio.get_running_loop()
        second = math.ceil(loop.time() + delay)
        due = self._due.get(second)
        if due is None:
            due = self._due[second] = {}
            loop.call_at(second, self._fire, second)
        due[key] = callback
        return second

    def cancel(self, second: int, key: Hashable) -> None:
        due = self._due.get(second)
        if due is not None:
            due.pop(key, None)

    def __len__(self) -> int:
        return sum(len(due) for due in self._due.values())

    def _fire(self, second: int) -> None:
        for callback in self._due.pop(second, {}).values():
            try:
                callback()
            except Exception:  # one failing callback must not cost the others their turn
                log.exception("timer callback failed")
