"""Orders: placing (stock, idempotency), reading with visibility rules, moving through the state
machine, and the background sweeper (confirmation timeout, repair of interrupted placements).

Placing an order, in order of writes (no transactions; store/orders.py explains why each step is
crash safe):
  idempotency record (when a key is given) → reservation → one hold per line (conditional
  `$inc` on the product) → claim the reservation → insert the order (with its `order:created`
  and its market-counter effect in the order's outbox) → publish the outbox, apply the effect →
  tell the listeners → release holds, delete the reservation.
A failed line gives back the lines already held before answering 409 INSUFFICIENT_STOCK. A crash
anywhere before the order insert leaves an open (or claimed, orderless) reservation whose holds
the sweeper gives back once it is older than `reservation_repair_after`.

Idempotency: the record `{customer_id}:{key}` holds a hash of the canonical body and the order id
chosen before any stock is touched, so concurrent duplicates race on one unique `_id` and
exactly one of them places the order. The others wait (polling, up to REPLAY_WAIT_SECONDS) for
that order to appear and then return it as a replay. If the first attempt fails with a known
outcome (409, 422, 404) its record is dropped and a waiting duplicate places the order itself; if
it dies with an unknown outcome the record stays until the repair pass has decided (no order →
record dropped). A duplicate that outwaits REPLAY_WAIT_SECONDS gets 409 IDEMPOTENCY_IN_PROGRESS
with `details.retry_after` (seconds).

Transitions are a compare-and-swap on (status, version): `find_one_and_replace` of the whole
document, so exactly one of any racing writers wins; only the winner's write records the
follow-up effects of a cancellation (stock back, market counters) and only it notifies listeners.

Events (a transactional outbox inside the order document; store/orders.py): the write that
changes an order also records its event in the order's `outbox`, carrying over earlier ones not
yet cleared. After the write the publisher stores and emits the outbox (idempotently, oldest
version first) and the outbox is cleared. A process killed in between leaves the events in the
document; the sweeper's repair pass publishes them once they are OUTBOX_REPAIR_AFTER old.

Follow-up effects (stock back, market counters) are recorded in the same write, in the order's
`effects`, and applied once each (store/orders.py): by the writer for its own version right
after publishing, else (its process died; or a later writer carried them over, which leaves them
to their writer) by the same repair pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import orjson

from auth.policy import is_super_admin, may_see_order
from hub.errors import Conflict, HubError, NotFound, Unavailable, ValidationFailed
from hub.order_events import OrderListener
from hub.order_states import RESTOCKING, SYSTEM_ACTOR_ID, Actor, actors_for, may_move, next_statuses
from hub.schemas.orders import OrderCreate, OrderQuery, OrderStatusChange
from store.client import UNAVAILABLE_ERRORS
from store.codec import epoch_ms, new_id, now, parse_id
from store.database import Store
from store.models import (
    Market,
    Order,
    OrderItem,
    OrderStatus,
    PendingEffect,
    PendingEvent,
    Product,
    Role,
    StatusChange,
    User,
)
from store.orders import IDEMPOTENCY_TTL_SECONDS, IdempotencyKeyTaken

log = logging.getLogger(__name__)

REPLAY_WAIT_SECONDS = 10.0
REPLAY_POLL_SECONDS = 0.05
CAS_ATTEMPTS = 5
SWEEP_BATCH = 100
TIMEOUT_REASON = "timeout"
# A live writer publishes its events milliseconds after its write; even with the database at its
# timeout (5 s a step) it is done or has given up well within this. Older ones were left by a
# process that died (or gave up): the repair pass publishes them. Clients see them this late.
OUTBOX_REPAIR_AFTER = timedelta(seconds=10)


class OrderEventPublisher(Protocol):
    """Publishes the events in an order's outbox (hub/realtime/publisher.py)."""

    async def publish_pending(self, order: Order, *, fresh_version: int | None) -> bool: ...


def body_hash(body: OrderCreate) -> str:
    """The same order asked twice hashes the same, whatever the order of lines or id case."""
    data = body.model_dump(mode="json")
    data["market_id"] = data["market_id"].lower()
    data["items"] = sorted(
        ({"product_id": line["product_id"].lower(), "quantity": line["quantity"]} for line in data["items"]),
        key=lambda line: str(line["product_id"]),
    )
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Orders:
    def __init__(
        self,
        store: Store,
        *,
        confirm_timeout: timedelta,
        reservation_repair_after: timedelta = timedelta(seconds=60),
        outbox_repair_after: timedelta = OUTBOX_REPAIR_AFTER,
        listeners: list[OrderListener] | None = None,
    ) -> None:
        self.store = store
        self.confirm_timeout = confirm_timeout
        self.reservation_repair_after = reservation_repair_after
        self.outbox_repair_after = outbox_repair_after
        self.listeners: list[OrderListener] = list(listeners or [])
        self.listener_failures = 0
        # Without one (no realtime), events stay in the outboxes until an instance with one repairs them.
        self.publisher: OrderEventPublisher | None = None

    def add_listener(self, listener: OrderListener) -> None:
        self.listeners.append(listener)

    def set_publisher(self, publisher: OrderEventPublisher) -> None:
        self.publisher = publisher

    # Placing

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
        age_ms = epoch_ms(now()) - int(record.get("created_ms", 0))
        stale_ms = min(IDEMPOTENCY_TTL_SECONDS * 1000, self._repair_after_ms())
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
        stamp = now()
        total = order_total(items)
        count = PendingEffect(kind="count", version=1, orders=1, revenue_cents=total)
        order = Order(
            id=order_id,
            market_id=market.id,
            customer_id=user.id,
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
        await self._follow_up(order, fresh=True)
        await self._notify(lambda listener: listener.order_created(order), order)
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

    # Reading

    async def get(self, user: User, order_id: str) -> Order:
        order = await self.store.orders.get(order_id)
        if order is None:
            raise NotFound("Order not found")
        market = await self.store.markets.get(order.market_id)
        if not may_see_order(user, order, market):
            raise NotFound("Order not found")
        return order

    async def list_orders(self, user: User, query: OrderQuery) -> tuple[list[Order], int]:
        """A customer's own orders, a market admin's market's orders, or (super_admin) all; newest first."""
        scope: dict[str, Any] = {}
        if is_super_admin(user):
            pass
        elif user.role is Role.MARKET_ADMIN:
            market = await self.store.markets.by_owner(user.id)
            if market is None:
                return [], 0
            scope["market_id"] = market.id
        else:
            scope["customer_id"] = user.id
        if query.market_id is not None:
            market_id = parse_id(query.market_id)
            if scope.get("market_id", market_id) != market_id:
                return [], 0
            scope["market_id"] = market_id
        if query.status is not None:
            scope["status"] = query.status.value
        return await self.store.orders.search(scope, skip=query.skip, limit=query.limit)

    # Moving

    async def change_status(self, user: User, order_id: str, body: OrderStatusChange) -> Order:
        for _ in range(CAS_ATTEMPTS):
            order = await self.get(user, order_id)
            if body.expected_version is not None and body.expected_version != order.version:
                raise _version_conflict(order)
            market = await self.store.markets.get(order.market_id)
            actors = actors_for(user, order, market)
            if not may_move(order.status, body.status, actors, order.delivery_option):
                raise Conflict(
                    f"An order that is {order.status.value} cannot be moved to {body.status.value} by you",
                    code="INVALID_TRANSITION",
                    details={
                        "from": order.status.value,
                        "to": body.status.value,
                        "allowed": [
                            status.value for status in next_statuses(order.status, actors, order.delivery_option)
                        ],
                    },
                )
            updated = await self._move(order, body.status, by=user.id, reason=body.reason)
            if updated is not None:
                return updated
            if body.expected_version is not None:
                raise _version_conflict(order)
            # Someone else moved it first and the caller did not pin a version: judge again.
        raise Conflict("The order keeps changing; reload it and try again", code="VERSION_CONFLICT")

    async def _move(self, order: Order, target: OrderStatus, *, by: str, reason: str | None) -> Order | None:
        """One CAS; the winner's write records its effects (a cancellation: stock back, counters
        down), then it applies them and notifies. None: someone else won."""
        stamp = now()
        version = order.version + 1
        change = StatusChange(status=target, at=stamp, by=by, reason=reason)
        effects = dict(order.effects)
        if target in RESTOCKING:
            for effect in (
                PendingEffect(kind="restock", version=version),
                PendingEffect(kind="count", version=version, orders=-1, revenue_cents=-order.total_cents),
            ):
                effects[effect.key] = effect  # fmt: skip
        new = order.model_copy(
            update={
                "status": target,
                "status_history": [*order.status_history, change],
                "version": version,
                "updated_at": stamp,
                "outbox": [*order.outbox, PendingEvent(name="order:updated", version=version)],
                "effects": effects,
            }
        )
        updated = await self.store.orders.replace_if_unchanged(order, new)
        if updated is None:
            return None
        await self._follow_up(updated, fresh=True)
        await self._notify(lambda listener: listener.order_changed(updated, order.status), updated)
        return updated

    async def _follow_up(self, order: Order, *, fresh: bool) -> bool:
        """Publish the outbox of the order as written at `order.version` and apply its effects (a
        fresh writer: those of its own version only), then clear the outbox. Never raises: what is
        left stays for the repair pass. True when nothing is left."""
        published = await self._publish(order, fresh=fresh)
        left = await self._apply_effects(order, only_version=order.version if fresh else None)
        if not published:
            return False
        try:
            await self.store.orders.clear_outbox(order.id, order.version, keep_claim=bool(left))
        except Exception:  # published: a repair publishes again (idempotently) and clears
            log.exception("order outbox not cleared", extra={"order_id": order.id, "version": order.version})
            return False
        return not left

    async def _publish(self, order: Order, *, fresh: bool) -> bool:
        """Publish the outbox; True when every event of it is in the history."""
        if not order.outbox:
            return True
        if self.publisher is None:
            return False
        try:
            return await self.publisher.publish_pending(order, fresh_version=order.version if fresh else None)
        except Exception:  # the write happened; the repair pass publishes what is left
            self.listener_failures += 1
            log.exception("order events not published", extra={"order_id": order.id, "version": order.version})
            return False

    async def _apply_effects(self, order: Order, *, only_version: int | None) -> list[str]:
        """Apply the order's pending effects (of `only_version`, else all), each once; the keys of
        those left pending (not this caller's, or failed)."""
        left: list[str] = []
        for key, effect in order.effects.items():
            if only_version is not None and effect.version != only_version:
                left.append(key)
                continue
            try:
                await self._apply_effect(order, key, effect)
            except Exception:  # the write happened; the repair pass applies it
                left.append(key)
                log.exception("order effect not applied", extra={"order_id": order.id, "effect": key})
        return left

    async def _apply_effect(self, order: Order, key: str, effect: PendingEffect) -> None:
        effects = self.store.order_effects
        marker = f"{order.id}:{effect.version}"
        if effect.kind == "restock":
            for item in order.items:
                await effects.return_stock(item.product_id, order.id, item.quantity)
            log.info("order cancelled, stock returned", extra={"order_id": order.id,
                     "by": order.status_history[effect.version - 1].by})  # fmt: skip
        else:
            await effects.count(order.market_id, marker, orders=effect.orders, revenue_cents=effect.revenue_cents)
        if not await self.store.orders.clear_effect(order.id, key):
            return  # cleared by another applier, which drops the markers
        if effect.kind == "restock":
            for item in order.items:
                await effects.forget_returned(item.product_id, order.id)
        else:
            await effects.forget_counted(order.market_id, marker)

    async def _notify(self, call: Callable[[OrderListener], Awaitable[None]], order: Order) -> None:
        for listener in list(self.listeners):
            try:
                await call(listener)
            except Exception:  # a listener never fails the write that already happened
                self.listener_failures += 1
                name = type(listener).__name__
                log.exception("order listener failed", extra={"order_id": order.id, "listener": name})

    # The sweeper

    async def cancel_unconfirmed(self) -> int:
        """Cancel `pending` orders older than the confirmation timeout; the CAS makes it once-only
        across instances. Returns how many this call cancelled."""
        cutoff = epoch_ms(now()) - int(self.confirm_timeout.total_seconds() * 1000)
        cancelled = 0
        for order in await self.store.orders.pending_before(cutoff, limit=SWEEP_BATCH):
            if not may_move(order.status, OrderStatus.CANCELLED, frozenset({Actor.SYSTEM}), order.delivery_option):
                continue
            if await self._move(order, OrderStatus.CANCELLED, by=SYSTEM_ACTOR_ID, reason=TIMEOUT_REASON):
                cancelled += 1
        if cancelled:
            log.info("unconfirmed orders cancelled", extra={"count": cancelled})
        return cancelled

    def _repair_after_ms(self) -> int:
        return int(self.reservation_repair_after.total_seconds() * 1000)

    async def repair_reservations(self, *, older_than: timedelta | None = None) -> int:
        """Finish placements that stopped half-way (see the module docstring). Returns how many."""
        reservations, holds = self.store.order_reservations, self.store.order_holds
        after_ms = self._repair_after_ms() if older_than is None else int(older_than.total_seconds() * 1000)
        cutoff = epoch_ms(now()) - after_ms + 1  # reservations made at or before now - after
        repaired = 0
        for reservation in await reservations.stale(cutoff, limit=SWEEP_BATCH):
            order_id = str(reservation["_id"])
            lines = [(str(line["product_id"]), int(line["quantity"])) for line in reservation["lines"]]
            state = reservation["state"]
            if state == "open" and not await reservations.claim(order_id, state="repairing", older_than_ms=cutoff):
                continue
            if state == "committed" and await self.store.orders.get(order_id) is not None:
                for product_id, _ in lines:
                    await holds.release(product_id, order_id)
            else:
                for product_id, quantity in lines:
                    await holds.give_back(product_id, order_id, quantity)
                if reservation.get("idempotency_id"):
                    await self.store.idempotency_keys.forget(reservation["idempotency_id"], order_id)
                log.warning("interrupted placement repaired", extra={"order_id": order_id, "state": state})
            await reservations.delete(order_id)
            repaired += 1
        return repaired

    async def publish_unpublished(self, *, older_than: timedelta | None = None) -> int:
        """Publish the events and apply the effects that writers left in outboxes (they died, or
        gave up), oldest first. Each order is claimed first, so several instances' passes do not
        repair it at once (and if they did, each event is still stored once, each effect applied
        once). Returns how many orders were repaired completely."""
        after = self.outbox_repair_after if older_than is None else older_than
        cutoff = epoch_ms(now()) - int(after.total_seconds() * 1000) + 1  # written at or before now - after
        published = 0
        for order in await self.store.orders.with_unpublished_events(cutoff, limit=SWEEP_BATCH):
            if not await self.store.orders.claim_outbox(order, cutoff):
                continue  # moved on (its writer publishes) or taken by another instance's pass
            if await self._follow_up(order, fresh=False):
                published += 1
                log.warning("left-over order events published", extra={"order_id": order.id,
                            "versions": [pending.version for pending in order.outbox],
                            "effects": list(order.effects)})  # fmt: skip
        return published

    async def sweep_once(self) -> None:
        await self.repair_reservations()
        await self.publish_unpublished()
        await self.cancel_unconfirmed()

    async def run_sweeper(self, interval_seconds: float) -> None:
        """Forever: sweep, sleep. Errors are logged; the next round tries again."""
        while True:
            try:
                await self.sweep_once()
            except UNAVAILABLE_ERRORS:
                log.warning("order sweeper: database unavailable")
            except Exception:  # the sweeper must outlive any one bad round
                log.exception("order sweeper round failed")
            await asyncio.sleep(interval_seconds)


def price_lines(lines: Sequence[tuple[Product, int]]) -> list[OrderItem]:
    """Order lines at the products' current prices: integer minor units, exact."""
    return [
        OrderItem(
            product_id=product.id,
            name=product.name,
            unit_price_cents=product.price_cents,
            quantity=quantity,
            line_total_cents=product.price_cents * quantity,
        )
        for product, quantity in lines
    ]


def order_total(items: Sequence[OrderItem]) -> int:
    return sum(item.line_total_cents for item in items)


def _problem(loc: list[str | int], message: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": "value_error"}


def _version_conflict(order: Order) -> Conflict:
    return Conflict(
        "The order has changed since you read it",
        code="VERSION_CONFLICT",
        details={"current_version": order.version, "status": order.status.value},
    )
