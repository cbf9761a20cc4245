"""Placing an order: stock for every line or none, idempotent per customer and key.

One round trip per step: (1) the placement, a hidden document of the orders collection naming
the lines and claiming the Idempotency-Key (store/orders.py); (2) every line taken and priced with
one conditional write on its product (store/stock.py), all lines at once; (3) the commit, the
placement replaced by the order; (4) the follow-up (hub/orders/followup.py); (5) later, a batch
of orders at a time, the holds released (hub/orders/cleanup.py). A refused line gives back the
lines taken and drops the placement (409 INSUFFICIENT_STOCK or 422), which frees the key; a
placement a dead process left is undone by the repair pass (hub/orders/sweeper.py). Why a crash
at any step loses nothing: docs/architecture.md, "Crash safety of the order path".

Concurrent duplicates race on the key's unique index: the others wait (up to
REPLAY_WAIT_SECONDS) for the order, which they replay, or for the placement to go away; then 409
IDEMPOTENCY_IN_PROGRESS with `details.retry_after`. The order keeps its key IDEMPOTENCY_TTL_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from hub.clock import Clock
from hub.errors import Conflict, HubError, NotFound, Unavailable, ValidationFailed
from hub.orders.cleanup import MarkerCleanup
from hub.orders.followup import OrderFollowUp
from hub.orders.pricing import body_hash, line_item, order_total
from hub.schemas.orders import OrderCreate
from store.codec import epoch_ms, from_document, new_id
from store.database import Store
from store.models import (
    CustomerContact,
    Market,
    Order,
    OrderItem,
    OrderStatus,
    PendingEffect,
    PendingEvent,
    StatusChange,
    User,
)
from store.orders import IDEMPOTENCY_TTL_SECONDS, IdempotencyKeyTaken
from store.stock import TakenLine

log = logging.getLogger(__name__)

REPLAY_WAIT_SECONDS = 10.0
REPLAY_POLL_SECONDS = 0.05
# A placement still open after this long is judged dead by the repair pass (hub/orders/sweeper.py).
PLACEMENT_REPAIR_AFTER = timedelta(seconds=60)
# A writer sends its takes only this soon after opening its placement: with the database timeout,
# each lands long before the repair may give the placement back (a later take would hold stock
# for nobody). A writer stalled longer answers 503.
PLACEMENT_TAKE_WITHIN = PLACEMENT_REPAIR_AFTER / 2

Lines = list[tuple[str, int]]


class OrderPlacing:
    def __init__(self, store: Store, follow_up: OrderFollowUp, cleanup: MarkerCleanup, *, clock: Clock) -> None:
        self.store = store
        self.follow_up = follow_up
        self.cleanup = cleanup
        self.clock = clock

    async def place(self, user: User, body: OrderCreate, idempotency_key: str | None) -> tuple[Order, bool]:
        """The order, and True when it is a replay of an earlier request with the same key."""
        lines = [(line.product_id.lower(), line.quantity) for line in body.items]
        idempotency = None if idempotency_key is None else (f"{user.id}:{idempotency_key}", body_hash(body))
        opened = await self._open(lines, idempotency)
        if isinstance(opened, Order):
            return opened, True
        order_id, at_ms, opened_at = opened
        try:
            market, items = await self._take(order_id, body, lines, opened_at)
        except HubError:
            # A known outcome: the lines taken are back; the placement (and its key) goes.
            await self.store.orders.drop_placement(order_id)
            raise
        order = self._order(order_id, user, body, market, items, holds_ms=at_ms, idempotency=idempotency)
        written_at = self.follow_up.monotonic()
        if not await self.store.orders.commit_placement(order):
            # The repair pass judged this placement dead and gave the stock back; a line taken
            # after its give-back comes back now.
            await self.store.order_holds.give_back(order_id, lines)
            raise Unavailable("Placing the order took too long; try again")
        # From here on the order exists: nothing below may fail the request.
        await self.follow_up.order_created(order, written_at=written_at, market=market)
        self.cleanup.release_holds(order_id, (product_id for product_id, _ in lines))
        return order, False

    async def _open(self, lines: Lines, idempotency: tuple[str, str] | None) -> tuple[str, int, float] | Order:
        """A new placement (its order id, its time and the monotonic time before it was written),
        or the order this key already placed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLAY_WAIT_SECONDS
        while True:
            order_id, at_ms, opened_at = new_id(), epoch_ms(self.clock.now()), self.follow_up.monotonic()
            try:
                await self.store.orders.open_placement(order_id, lines, at_ms=at_ms, idempotency=idempotency)
                return order_id, at_ms, opened_at
            except IdempotencyKeyTaken as taken:
                assert idempotency is not None
                existing = taken.existing
                if existing is None:
                    continue  # gone between our insert and our read: try again
                replay = await self._replay(existing, idempotency)
                if replay is not None:
                    return replay
                if "placing" not in existing:
                    continue  # an expired key, freed just now
                if loop.time() > deadline:
                    raise Conflict(
                        "An order with this Idempotency-Key is still being placed; retry shortly",
                        code="IDEMPOTENCY_IN_PROGRESS",
                        details={"retry_after": 1},
                    ) from None
                await asyncio.sleep(REPLAY_POLL_SECONDS)

    async def _replay(self, existing: dict[str, Any], idempotency: tuple[str, str]) -> Order | None:
        """The order the key placed; None while it is still being placed, or when the key expired."""
        key, digest = idempotency
        if "placing" not in existing:
            expired_before = epoch_ms(self.clock.now()) - IDEMPOTENCY_TTL_SECONDS * 1000
            if int(existing.get("created_ms", 0)) < expired_before:
                await self.store.orders.free_idempotency_key(existing["_id"], key, created_before_ms=expired_before)
                return None
        if existing.get("idempotency_hash") != digest:
            raise Conflict("This Idempotency-Key was used with a different body", code="IDEMPOTENCY_MISMATCH")
        if "placing" in existing:
            return None
        return from_document(Order, existing)

    async def _take(
        self, order_id: str, body: OrderCreate, lines: Lines, opened_at: float
    ) -> tuple[Market, list[OrderItem]]:
        """The market, and every line taken and priced; or HubError with every line given back."""
        market = await self.store.markets.get(body.market_id)
        if market is None or not market.is_active:
            raise NotFound("Market not found")
        problems: list[dict[str, Any]] = []
        if body.delivery_option not in market.delivery_options:
            problems.append(_problem(["body", "delivery_option"], "this market does not offer this delivery option"))
        if body.payment_method not in market.payment_methods:
            problems.append(_problem(["body", "payment_method"], "this market does not accept this payment method"))
        if problems:
            products_problems, _ = await self._refusals(market, lines)
            raise ValidationFailed("The order cannot be placed as asked", details=problems + products_problems)
        if self.follow_up.monotonic() - opened_at >= PLACEMENT_TAKE_WITHIN.total_seconds():
            raise Unavailable("Placing the order took too long; try again")  # nothing taken yet
        holds = self.store.order_holds
        results = await asyncio.gather(
            *(holds.take(product_id, order_id, quantity, market_id=market.id) for product_id, quantity in lines),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # an unknown outcome: what was taken stays held until the repair pass
        taken = [result for result in results if isinstance(result, TakenLine)]
        if len(taken) == len(lines):
            return market, [
                line_item(pid, line.name, line.price_cents, qty) for (pid, qty), line in zip(lines, taken, strict=True)
            ]
        if taken:
            await holds.give_back(order_id, lines)
        problems, stock = await self._refusals(market, lines)
        if problems:
            raise ValidationFailed("The order cannot be placed as asked", details=problems)
        short = [(product_id, quantity) for product_id, quantity in lines if stock.get(product_id, 0) < quantity]
        # None short any more (stock came back meanwhile): the line that was refused.
        refused = short or [line for line, result in zip(lines, results, strict=True) if result is None][:1]
        details = [
            {"product_id": product_id, "requested": quantity, "available": stock.get(product_id, 0)}
            for product_id, quantity in refused
        ]
        raise Conflict("Not enough stock for this order", code="INSUFFICIENT_STOCK", details=details)

    async def _refusals(self, market: Market, lines: Lines) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Why lines cannot be taken: 422 problems, and each product's stock now."""
        products = await self.store.products.get_many([product_id for product_id, _ in lines])
        problems: list[dict[str, Any]] = []
        for index, (product_id, _) in enumerate(lines):
            product = products.get(product_id)
            loc: list[str | int] = ["body", "items", index, "product_id"]
            if product is None or product.market_id != market.id:
                problems.append(_problem(loc, "no such product in this market"))
            elif not product.is_available:
                problems.append(_problem(loc, "this product is not available"))
        return problems, {product_id: product.stock for product_id, product in products.items()}

    def _order(
        self,
        order_id: str,
        user: User,
        body: OrderCreate,
        market: Market,
        items: list[OrderItem],
        *,
        holds_ms: int,
        idempotency: tuple[str, str] | None,
    ) -> Order:
        stamp = self.clock.now()
        key, digest = idempotency or (None, None)
        total = order_total(items)
        count = PendingEffect(kind="count", version=1, orders=1, revenue_cents=total)
        return Order(
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
            idempotency=key,
            idempotency_hash=digest,
            holds_ms=holds_ms,
        )


def _problem(loc: list[str | int], message: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": "value_error"}
