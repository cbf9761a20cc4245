"""Dropping, a batch at a time, the records that made a placement's writes safe to repeat, once
nothing can need them any more: the stock holds of orders that are written (with the order's
`holds_ms`, by which the repair pass would otherwise find them) and the markers of applied
counter effects (docs/architecture.md).

Off the request path, and one write per collection per batch whatever the number of orders in
it: at load, a fraction of a database command per order. A process that dies with some queued
leaves the holds to the repair pass (the orders still have `holds_ms`) and a few bytes of counter
marker on the market, which nothing reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from store.database import Store

log = logging.getLogger(__name__)

# Long enough to gather the orders of a busy moment into one write, short enough that products
# carry few hold records at a time.
BATCH_DELAY_SECONDS = 0.1


class MarkerCleanup:
    def __init__(self, store: Store, *, delay: float = BATCH_DELAY_SECONDS) -> None:
        self.store = store
        self.delay = delay
        self._holds: list[tuple[str, str]] = []  # (product_id, order_id)
        self._orders: list[str] = []
        self._counted: list[tuple[str, str]] = []  # (market_id, marker)
        self._queued = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
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
        """The counter effect is applied and cleared from its order: its marker may go."""
        self._counted.append((market_id, marker))
        self._queued.set()

    async def _run(self) -> None:
        while True:
            await self._queued.wait()
            await asyncio.sleep(self.delay)
            self._queued.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued now (after any flush in progress)."""
        async with self._lock:
            holds, orders, counted = self._holds, self._orders, self._counted
            self._holds, self._orders, self._counted = [], [], []
            if holds:
                try:
                    await self.store.order_holds.release(holds)
                    await self.store.orders.holds_released(orders)
                except Exception:  # the repair pass releases them: the orders keep `holds_ms`
                    log.warning("releasing holds failed; left to the repair pass", exc_info=True)
            if counted:
                try:
                    await self.store.order_effects.forget_counted(counted)
                except Exception:  # a few bytes on the market that nothing reads
                    log.warning("dropping counter markers failed", exc_info=True)
