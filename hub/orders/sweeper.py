"""The order sweeper: a background pass, safe to run on every instance at once.

- Confirmation timeout: `pending` orders older than `confirm_timeout` are cancelled (through the
  same compare-and-swap as any move, so exactly one instance does it).
- Interrupted placements (hub/orders/placing.py): placements older than the repair bound are
  undone, and holds that orders of dead processes kept are released.
- Left-over follow-ups: events and effects a dead (or failed) writer left in an order's outbox
  are published and applied once they are OUTBOX_REPAIR_AFTER old (hub/orders/followup.py).

Why each repair is safe, even with several instances at once: docs/architecture.md, "Crash safety of the order path".
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from hub.clock import Clock
from hub.order_states import SYSTEM_ACTOR_ID, Actor, may_move
from hub.orders.followup import OUTBOX_REPAIR_AFTER, OrderFollowUp
from hub.orders.placing import PLACEMENT_REPAIR_AFTER
from hub.orders.status import OrderStatusChanges
from store.client import UNAVAILABLE_ERRORS
from store.codec import epoch_ms
from store.database import Store
from store.models import OrderStatus

log = logging.getLogger(__name__)

SWEEP_BATCH = 100
TIMEOUT_REASON = "timeout"


class OrderSweeper:
    def __init__(
        self,
        store: Store,
        status_changes: OrderStatusChanges,
        follow_up: OrderFollowUp,
        *,
        clock: Clock,
        confirm_timeout: timedelta,
        placement_repair_after: timedelta = PLACEMENT_REPAIR_AFTER,
        outbox_repair_after: timedelta = OUTBOX_REPAIR_AFTER,
    ) -> None:
        self.store = store
        self.status_changes = status_changes
        self.follow_up = follow_up
        self.clock = clock
        self.confirm_timeout = confirm_timeout
        self.placement_repair_after = placement_repair_after
        self.outbox_repair_after = outbox_repair_after

    async def cancel_unconfirmed(self) -> int:
        """Cancel `pending` orders older than the confirmation timeout; the CAS makes it once-only
        across instances. Returns how many this call cancelled."""
        cutoff = epoch_ms(self.clock.now()) - int(self.confirm_timeout.total_seconds() * 1000)
        cancelled = 0
        for order in await self.store.orders.pending_before(cutoff, limit=SWEEP_BATCH):
            if not may_move(order.status, OrderStatus.CANCELLED, frozenset({Actor.SYSTEM}), order.delivery_option):
                continue
            if await self.status_changes.move(order, OrderStatus.CANCELLED, by=SYSTEM_ACTOR_ID, reason=TIMEOUT_REASON):
                cancelled += 1
        if cancelled:
            log.info("unconfirmed orders cancelled", extra={"count": cancelled})
        return cancelled

    async def repair_placements(self, *, older_than: timedelta | None = None) -> int:
        """Finish what dead processes left of placements (docs/architecture.md): an "open"
        placement older than the bound is taken over, its lines given back and it is dropped (its
        key is free again); an order whose holds were never released has them released. Returns
        how many placements and orders were repaired."""
        orders, holds = self.store.orders, self.store.order_holds
        after = self.placement_repair_after if older_than is None else older_than
        cutoff = epoch_ms(self.clock.now()) - int(after.total_seconds() * 1000) + 1  # made at or before now - after
        repaired = 0
        for document in await orders.with_holds(cutoff, limit=SWEEP_BATCH):
            order_id, state = str(document["_id"]), document.get("placing")
            if state is None:  # an order: its stock stays taken
                items = document.get("items", [])
                await holds.release((str(item["product_id"]), order_id) for item in items)
                await orders.holds_released([order_id])
            else:
                if state == "open" and not await orders.claim_placement(order_id, older_than_ms=cutoff):
                    continue  # committed (or taken over) meanwhile
                lines = [(str(line["product_id"]), int(line["quantity"])) for line in document["lines"]]
                await holds.give_back(order_id, lines)
                await orders.drop_placement(order_id)
                log.warning("interrupted placement repaired", extra={"order_id": order_id, "state": state})
            repaired += 1
        return repaired

    async def publish_unpublished(self, *, older_than: timedelta | None = None) -> int:
        """Publish the events and apply the effects that writers left in outboxes (they died, or
        gave up), oldest first. Each order is claimed first, so several instances' passes do not
        repair it at once (and if they did, each event is still stored once, each effect applied
        once). Returns how many orders were repaired completely."""
        after = self.outbox_repair_after if older_than is None else older_than
        cutoff = epoch_ms(self.clock.now()) - int(after.total_seconds() * 1000) + 1  # written at or before now - after
        published = 0
        read_at = self.follow_up.monotonic()  # a batch this pass takes too long over is left to the next
        for order in await self.store.orders.with_unpublished_events(cutoff, limit=SWEEP_BATCH):
            if not await self.store.orders.claim_outbox(order, cutoff):
                continue  # moved on (its writer publishes) or taken by another instance's pass
            if await self.follow_up.finish(order, fresh=False, read_at=read_at):
                published += 1
                log.warning("left-over order events published", extra={"order_id": order.id,
                            "versions": [pending.version for pending in order.outbox],
                            "effects": list(order.effects)})  # fmt: skip
        return published

    async def sweep_once(self) -> None:
        await self.repair_placements()
        await self.publish_unpublished()
        await self.cancel_unconfirmed()

    async def run(self, interval_seconds: float) -> None:
        """Forever: sweep, sleep. Errors are logged; the next round tries again."""
        while True:
            try:
                await self.sweep_once()
            except UNAVAILABLE_ERRORS:
                log.warning("order sweeper: database unavailable")
            except Exception:  # the sweeper must outlive any one bad round
                log.exception("order sweeper round failed")
            await asyncio.sleep(interval_seconds)
