"""Placing an order: stock for every line or none, idempotent per customer and key.

The writes in order (idempotency record, reservation, holds, order insert, follow-up), and why a crash at any
of them loses nothing: docs/architecture.md, "Crash safety of the order path".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from hub.clock import Clock
from hub.errors import Conflict, HubError, NotFound, Unavailable, ValidationFailed
from hub.orders.followup import OrderFollowUp
from hub.orders.pricing import body_hash, order_total, price_lines
from hub.schemas.orders import OrderCreate
from store.client import UNAVAILABLE_ERRORS
from store.codec import epoch_ms, new_id
from store.database import Store
from store.models import (
    CustomerContact,
    Market,
    Order,
    OrderItem,
    OrderStatus,
    PendingEffect,
    PendingEvent,
    Product,
    StatusChange,
    User,
)
from store.orders import IDEMPOTENCY_TTL_SECONDS, IdempotencyKeyTaken

log = logging.getLogger(__name__)

REPLAY_WAIT_SECONDS = 10.0
REPLAY_POLL_SECONDS = 0.05
# A placement still in flight after this long is judged dead by the repair pass (hub/orders/sweeper.py).
RESERVATION_REPAIR_AFTER = timedelta(seconds=60)


class OrderPlacing:
    def __init__(
        self,
        store: Store,
        follow_up: OrderFollowUp,
        *,
        clock: Clock,
        reservation_repair_after: timedelta = RESERVATION_REPAIR_AFTER,
    ) -> None:
        self.store = store
        self.follow_up = follow_up
        self.clock = clock
        self.reservation_repair_after = reservation_repair_after

    async def place(self, user: User, body: OrderCreate, idempotency_key: str | None) -> tuple[Order, bool]:
        """The order, and True when it is a replay of an earlier request with the same key."""
        if idempotency_key is None:
            return await self._place(user, body, new_id(), None), False
        record_id = f"{user.id}:{idempotency_key}"
        digest = body_hash(body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLAY_WAIT_SECONDS
        while True:
            order_id = new_id()
            try:
                await self.store.idempotency_keys.claim(record_id, digest, order_id)
            except IdempotencyKeyTaken as taken:
                replay = await self._replay(taken.record, digest)
                if replay is not None:
                    return replay, True
                if loop.time() > deadline:
                    raise Conflict(
                        "An order with this Idempotency-Key is still being placed; retry shortly",
                        code="IDEMPOTENCY_IN_PROGRESS",
                        details={"retry_after": 1},
                    ) from None
                await asyncio.sleep(REPLAY_POLL_SECONDS)
                continue
            try:
                return await self._place(user, body, order_id, record_id), False
            except HubError:
                # A known outcome with nothing written: the key may be used again.
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await self.store.idempotency_keys.forget(record_id, order_id)
                raise

    async def _replay(self, record: dict[str, Any] | None, digest: str) -> Order | None:
        """The order an existing record points at, or None when the caller should claim again/wait."""
        if record is None:
            return None  # dropped between our insert and our read: claim again
        if record["body_hash"] != digest:
            raise Conflict("This Idempotency-Key was used with a different body", code="IDEMPOTENCY_MISMATCH")
        order = await self.store.orders.get(record["order_id"])
        if order is not None:
            return order
        age_ms = epoch_ms(self.clock.now()) - int(record.get("created_ms", 0))
        stale_ms = min(IDEMPOTENCY_TTL_SECONDS * 1000, int(self.reservation_repair_after.total_seconds() * 1000))
        if age_ms > stale_ms and await self.store.order_reservations.get(record["order_id"]) is None:
            # Its placement died and was repaired (or never reserved): free the key.
            await self.store.idempotency_keys.forget(record["_id"], record["order_id"])
        return None

    async def _place(self, user: User, body: OrderCreate, order_id: str, record_id: str | None) -> Order:
        market = await self.store.markets.get(body.market_id)
        if market is None or not market.is_active:
            raise NotFound("Market not found")
        items = await self._priced_items(market, body)
        lines = [(item.product_id, item.quantity) for item in items]
        await self._reserve(order_id, lines, record_id)
        if not await self.store.order_reservations.claim(order_id, state="committed"):
            # The repair pass judged this placement dead and gave the stock back.
            raise Unavailable("Placing the order took too long; try again")
        stamp = self.clock.now()
        total = order_total(items)
        count = PendingEffect(kind="count", version=1, orders=1, revenue_cents=total)
        order = Order(
            id=order_id,
            market_id=market.id,
            customer_id=user.id,
            customer=CustomerContact(name=user.name, phone=user.phone),
            items=items,
            total_cents=total,
            currency=market.currency,
            status=OrderStatus.PENDING,
            status_history=[StatusChange(status=OrderStatus.PENDING, at=stamp, by=user.id)],
            delivery_option=body.delivery_option,
            payment_method=body.payment_method,
            delivery_address=body.delivery_address,
            notes=body.notes,
            version=1,
            created_at=stamp,
            updated_at=stamp,
            outbox=[PendingEvent(name="order:created", version=1)],
            effects={count.key: count},
        )
        await self.store.orders.insert(order)
        # From here on the order exists: nothing below may fail the request. Its event goes first:
        # the order can be moved as soon as it is inserted, and a move waits a moment for this
        # event before publishing it itself (the settling writes below take several round trips).
        await self.follow_up.order_created(order)
        await self._settle(order, lines)
        return order

    async def _priced_items(self, market: Market, body: OrderCreate) -> list[OrderItem]:
        problems: list[dict[str, Any]] = []
        if body.delivery_option not in market.delivery_options:
            problems.append(_problem(["body", "delivery_option"], "this market does not offer this delivery option"))
        if body.payment_method not in market.payment_methods:
            problems.append(_problem(["body", "payment_method"], "this market does not accept this payment method"))
        product_ids = [line.product_id.lower() for line in body.items]
        products = await self.store.products.get_many(product_ids)
        priced: list[tuple[Product, int]] = []
        for index, line in enumerate(body.items):
            product = products.get(product_ids[index])
            loc: list[str | int] = ["body", "items", index, "product_id"]
            if product is None or product.market_id != market.id:
                problems.append(_problem(loc, "no such product in this market"))
            elif not product.is_available:
                problems.append(_problem(loc, "this product is not available"))
            else:
                priced.append((product, line.quantity))
        if problems:
            raise ValidationFailed("The order cannot be placed as asked", details=problems)
        return price_lines(priced)

    async def _reserve(self, order_id: str, lines: list[tuple[str, int]], record_id: str | None) -> None:
        """Hold every line or none; 409 INSUFFICIENT_STOCK with per-line details otherwise."""
        reservations, holds = self.store.order_reservations, self.store.order_holds
        await reservations.open(order_id, lines, record_id)
        taken: list[tuple[str, int]] = []
        failed: tuple[str, int] | None = None
        for product_id, quantity in lines:
            if not await holds.take(product_id, order_id, quantity):
                failed = (product_id, quantity)
                break
            taken.append((product_id, quantity))
        if failed is None:
            return
        # Still `open`: should this give-back be interrupted, the repair pass finishes it.
        if not await reservations.claim(order_id, state="repairing"):
            raise Unavailable("Placing the order took too long; try again")
        for product_id, quantity in taken:
            await holds.give_back(product_id, order_id, quantity)
        await reservations.delete(order_id)
        available = await holds.available([product_id for product_id, _ in lines])
        short = [(product_id, quantity) for product_id, quantity in lines if available.get(product_id, 0) < quantity]
        details = [
            {"product_id": product_id, "requested": quantity, "available": available.get(product_id, 0)}
            for product_id, quantity in (short or [failed])
        ]
        raise Conflict("Not enough stock for this order", code="INSUFFICIENT_STOCK", details=details)

    async def _settle(self, order: Order, lines: list[tuple[str, int]]) -> None:
        """After the insert: the held stock becomes the order's."""
        try:
            for product_id, _ in lines:
                await self.store.order_holds.release(product_id, order.id)
            await self.store.order_reservations.delete(order.id)
        except Exception:  # the order is written; the repair pass releases the holds later
            log.warning("releasing holds failed; left to the repair pass", exc_info=True, extra={"order_id": order.id})


def _problem(loc: list[str | int], message: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": "value_error"}
