"""Dropping, a batch at a time, the records that made an order's writes safe to repeat, once
nothing can need them any more (docs/architecture.md, "Crash safety of the order path"):

- the stock holds of orders that are written (with the order's `holds_ms`, by which the repair
  pass would otherwise find them), as soon as the batch goes: a hold of a written order is inert;
- the markers of applied effects (`counted.<order_id>:<version>` on markets, `returned.<order_id>`
  on products), MARKER_RETENTION after the effect was cleared from its order. An applier may have
  read the effect as pending just before it was cleared and still be on its way to apply it; the
  marker must still be there when its write lands. Every applier gives up on a read older than
  OUTBOX_REPAIR_AFTER (hub/orders/followup.py) and its write on DB_TIMEOUT_SECONDS, so the marker
  outlives any applier's read by far.

Off the request path, and one write per collection per batch whatever the number of orders in
it: at load, a fraction of a database command per order. The markers wait in memory in the
order they were queued (all wait the same time): at most rate x MARKER_RETENTION entries. A
process that stops or dies with some queued leaves the holds to the repair pass (the orders still
have `holds_ms`) and a few bytes of marker on the product or market, which nothing reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from store.database import Store

log = logging.getLogger(__name__)

# Long enough to gather the orders of a busy moment into one write, short enough that products
# carry few hold records at a time.
BATCH_DELAY_SECONDS = 0.1
# How long a marker stays after its effect is cleared: far beyond the oldest read any applier may
# still act on (OUTBOX_REPAIR_AFTER, 10 s, plus a write's DB_TIMEOUT_SECONDS, 4 s, on the wire).
MARKER_RETENTION_SECONDS = 180.0


class MarkerCleanup:
    def __init__(
        self,
        store: Store,
        *,
        delay: float = BATCH_DELAY_SECONDS,
        retention: float = MARKER_RETENTION_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.delay = delay
        self.retention = retention
        self.monotonic = monotonic
        self._holds: list[tuple[str, str]] = []  # (product_id, order_id)
        self._orders: list[str] = []
        # (due, market_id or None, product_id or None, marker), in the order queued = the order due
        self._markers: deque[tuple[float, str | None, str | None, str]] = deque()
        self._queued = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop; the holds go now, markers not yet due stay (as after a kill)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    def release_holds(self, order_id: str, product_ids: Iterable[str]) -> None:
        """The order is written: its holds may go."""
        self._holds.extend((product_id, order_id) for product_id in product_ids)
        self._orders.append(order_id)
        self._queued.set()

    def forget_counted(self, market_id: str, marker: str) -> None:
        """The counter effect is cleared from its order: its marker goes after the retention."""
        self._queue_marker(market_id, None, marker)

    def forget_returned(self, product_id: str, order_id: str) -> None:
        """The restock effect is cleared from its order: the line's marker goes after the retention."""
        self._queue_marker(None, product_id, order_id)

    def _queue_marker(self, market_id: str | None, product_id: str | None, marker: str) -> None:
        if not self._markers:
            self._queued.set()  # the task sleeps without a deadline: give it one
        self._markers.append((self.monotonic() + self.retention, market_id, product_id, marker))

    async def _run(self) -> None:
        while True:
            wait = max(0.0, self._markers[0][0] - self.monotonic()) if self._markers else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._queued.wait()
            await asyncio.sleep(self.delay)
            self._queued.clear()
            await self.flush()

    def _due_markers(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(market_id, marker) and (product_id, order_id) pairs whose retention has passed."""
        counted: list[tuple[str, str]] = []
        returned: list[tuple[str, str]] = []
        now = self.monotonic()
        while self._markers and self._markers[0][0] <= now:
            _, market_id, product_id, marker = self._markers.popleft()
            if market_id is not None:
                counted.append((market_id, marker))
            elif product_id is not None:
                returned.append((product_id, marker))
        return counted, returned

    async def flush(self) -> None:
        """Write what is due now (after any flush in progress)."""
        async with self._lock:
            holds, orders = self._holds, self._orders
            self._holds, self._orders = [], []
            counted, returned = self._due_markers()
            if holds:
                try:
                    await self.store.order_holds.release(holds)
                    await self.store.orders.holds_released(orders)
                except Exception:  # the repair pass releases them: the orders keep `holds_ms`
                    log.warning("releasing holds failed; left to the repair pass", exc_info=True)
            try:
                if counted:
                    await self.store.order_effects.forget_counted(counted)
                if returned:
                    await self.store.order_effects.forget_returned(returned)
            except Exception:  # a few bytes on the product or market that nothing reads
                log.warning("dropping effect markers failed", exc_info=True)
