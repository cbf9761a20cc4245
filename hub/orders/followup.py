"""What follows every order write: publish its outbox, apply its effects once, tell the listeners.

Shared by the writers (placing, status changes) and the sweeper's repair pass. Why outbox events are
stored once and effects applied once, whoever gets there: docs/architecture.md, "Crash safety of the order path".

Listeners (hub/order_events.py) hear of a write after it has succeeded; a listener's failure is
logged and never fails the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Protocol

from hub.order_events import OrderListener
from hub.orders.cleanup import MarkerCleanup
from store.database import Store
from store.models import Market, Order, OrderStatus, PendingEffect

log = logging.getLogger(__name__)

# A live writer publishes its events milliseconds after its write; even with the database at its
# timeout (4 s a step) it is done or has given up well within this. Older ones were left by a
# process that died (or gave up): the repair pass publishes them. Clients see them this late.
# It is also every applier's own bound: nobody starts applying an effect it knew pending longer
# ago than this (a stalled writer leaves it to the repair pass), which is what lets an effect's
# marker go MARKER_RETENTION_SECONDS after the effect is cleared (hub/orders/cleanup.py).
OUTBOX_REPAIR_AFTER = timedelta(seconds=10)


class StaleRead(Exception):
    """The effect was read as pending longer ago than OUTBOX_REPAIR_AFTER: not applied."""


class OrderEventPublisher(Protocol):
    """Publishes the events in an order's outbox (hub/realtime/publisher.py)."""

    async def publish_pending(self, order: Order, *, fresh_version: int | None) -> bool: ...


class WebhookDeliveryMaker(Protocol):
    """Makes the webhook deliveries of an order's published outbox events (hub/webhooks/outbox.py)."""

    async def create_for(self, order: Order) -> int: ...


class OrderFollowUp:
    def __init__(
        self,
        store: Store,
        *,
        publisher: OrderEventPublisher | None,
        listeners: Sequence[OrderListener] = (),
        webhook_deliveries: WebhookDeliveryMaker | None = None,
        cleanup: MarkerCleanup | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        # Without one, effect markers are left where they are (a few bytes each; nothing reads them).
        self.cleanup = cleanup
        # What the age of a read is measured with (callers take `read_at` from it).
        self.monotonic = monotonic
        # Without one (no realtime), events stay in the outboxes until an instance with one repairs them.
        self.publisher = publisher
        self.listeners = tuple(listeners)
        self.webhook_deliveries = webhook_deliveries

    async def order_created(self, order: Order, *, written_at: float, market: Market | None = None) -> None:
        """After the insert of a new order: its events, its effects, then the listeners. `market`:
        as the writer read it, if it did (it tells whether the market may have webhooks).
        `written_at`: `self.monotonic()` taken before the write was sent."""
        await self.finish(order, fresh=True, read_at=written_at, market=market)
        await self._notify(lambda listener: listener.order_created(order), order)

    async def order_changed(
        self, order: Order, previous_status: OrderStatus, *, written_at: float, market: Market | None = None
    ) -> None:
        """After a status change won its compare-and-swap (`written_at`: as in order_created)."""
        await self.finish(order, fresh=True, read_at=written_at, market=market)
        await self._notify(lambda listener: listener.order_changed(order, previous_status), order)

    async def finish(self, order: Order, *, fresh: bool, read_at: float, market: Market | None = None) -> bool:
        """Publish the outbox of the order as written at `order.version` and apply its effects (a
        fresh writer: those of its own version only), then clear the outbox and the applied effects
        in one write. `read_at`: `self.monotonic()` before `order` was read (or written); effects
        are applied only while that is less than OUTBOX_REPAIR_AFTER ago. Never raises: what is
        left stays for the repair pass. True when nothing is left."""
        published = await self._publish(order, fresh=fresh) and await self._make_deliveries(order, market)
        applied, left = await self._apply_effects(order, only_version=order.version if fresh else None, read_at=read_at)
        orders = self.store.orders
        try:
            if published and await orders.clear_outbox(order.id, order.version, effects=applied, keep_claim=bool(left)):
                self._forget_markers(order, applied)
                return not left
            # Not published, or the order moved on (its next writer carried the outbox over), or
            # another applier cleared one of these effects: each effect on its own, whatever the version.
            for key in applied:
                if await orders.clear_effect(order.id, key):
                    self._forget_markers(order, [key])
            if published:
                await orders.clear_outbox(order.id, order.version, keep_claim=bool(left))
        except Exception:  # published/applied: a repair publishes again (idempotently), applies none twice, clears
            log.exception("order outbox not cleared", extra={"order_id": order.id, "version": order.version})
            return False
        return published and not left

    async def _publish(self, order: Order, *, fresh: bool) -> bool:
        """Publish the outbox; True when every event of it is in the history."""
        if not order.outbox:
            return True
        if self.publisher is None:
            return False
        try:
            return await self.publisher.publish_pending(order, fresh_version=order.version if fresh else None)
        except Exception:  # the write happened; the repair pass publishes what is left
            log.exception("order events not published", extra={"order_id": order.id, "version": order.version})
            return False

    async def _make_deliveries(self, order: Order, market: Market | None) -> bool:
        """The webhook deliveries of the outbox's events, which are in the history now (idempotent);
        False leaves the outbox to the repair pass. A market read by the writer that never had an
        endpoint (store/webhooks.py) spares the look for its endpoints."""
        if self.webhook_deliveries is None or not order.outbox or (market is not None and not market.webhooks):
            return True
        try:
            await self.webhook_deliveries.create_for(order)
        except Exception:  # the write happened; the repair pass makes them
            log.exception("webhook deliveries not made", extra={"order_id": order.id, "version": order.version})
            return False
        return True

    async def _apply_effects(
        self, order: Order, *, only_version: int | None, read_at: float
    ) -> tuple[list[str], list[str]]:
        """Apply the order's pending effects (of `only_version`, else all), each once: the keys of
        those applied, and of those left pending (not this caller's, failed, or read too long ago)."""
        applied: list[str] = []
        left: list[str] = []
        for key, effect in order.effects.items():
            if only_version is not None and effect.version != only_version:
                left.append(key)
                continue
            try:
                await self._apply_effect(order, effect, read_at)
            except StaleRead:  # another applier may have applied and cleared it meanwhile
                left.append(key)
                log.warning("order effect read too long ago; left to the repair pass",
                            extra={"order_id": order.id, "effect": key})  # fmt: skip
            except Exception:  # the write happened; the repair pass applies it
                left.append(key)
                log.exception("order effect not applied", extra={"order_id": order.id, "effect": key})
            else:
                applied.append(key)
        return applied, left

    async def _apply_effect(self, order: Order, effect: PendingEffect, read_at: float) -> None:
        """Each write on a target starts only while the read is fresh: with its database timeout,
        it lands long before the marker of an effect cleared after the read is dropped."""
        effects = self.store.order_effects
        if effect.kind == "restock":
            for item in order.items:
                self._check_fresh(read_at)
                await effects.return_stock(item.product_id, order.id, item.quantity)
            log.info("order cancelled, stock returned", extra={"order_id": order.id,
                     "by": order.status_history[effect.version - 1].by})  # fmt: skip
        else:
            marker = f"{order.id}:{effect.version}"
            self._check_fresh(read_at)
            await effects.count(order.market_id, marker, orders=effect.orders, revenue_cents=effect.revenue_cents)

    def _check_fresh(self, read_at: float) -> None:
        if self.monotonic() - read_at >= OUTBOX_REPAIR_AFTER.total_seconds():
            raise StaleRead

    def _forget_markers(self, order: Order, keys: list[str]) -> None:
        """Whoever cleared an effect from the order has its markers dropped, MARKER_RETENTION_SECONDS
        later (hub/orders/cleanup.py): a marker outlives its pending entry and any applier's read of it."""
        if self.cleanup is None:
            return
        for key in keys:
            effect = order.effects[key]
            if effect.kind == "restock":
                for item in order.items:
                    self.cleanup.forget_returned(item.product_id, order.id)
            else:
                self.cleanup.forget_counted(order.market_id, f"{order.id}:{effect.version}")

    async def _notify(self, call: Callable[[OrderListener], Awaitable[None]], order: Order) -> None:
        for listener in self.listeners:
            try:
                await call(listener)
            except Exception:  # a listener never fails the write that already happened
                name = type(listener).__name__
                log.exception("order listener failed", extra={"order_id": order.id, "listener": name})
