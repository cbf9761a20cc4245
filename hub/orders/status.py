"""Moving an order through the state machine (hub/order_states.py).

A compare-and-swap on (status, version), so exactly one of any racing writers wins and only it records the
follow-up and publishes (docs/architecture.md, "Changing an order").
"""

from __future__ import annotations

from hub.clock import Clock
from hub.errors import Conflict
from hub.order_states import RESTOCKING, actors_for, may_move, next_statuses
from hub.orders.followup import OrderFollowUp
from hub.orders.reading import OrderReader
from hub.schemas.orders import OrderStatusChange
from store.database import Store
from store.models import Market, Order, OrderStatus, PendingEffect, PendingEvent, StatusChange, User

CAS_ATTEMPTS = 5


class OrderStatusChanges:
    def __init__(self, store: Store, reader: OrderReader, follow_up: OrderFollowUp, *, clock: Clock) -> None:
        self.store = store
        self.reader = reader
        self.follow_up = follow_up
        self.clock = clock

    async def change_status(self, user: User, order_id: str, body: OrderStatusChange) -> Order:
        for _ in range(CAS_ATTEMPTS):
            order, market = await self.reader.get_with_market(user, order_id)
            if body.expected_version is not None and body.expected_version != order.version:
                raise _version_conflict(order)
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
            updated = await self.move(order, body.status, by=user.id, reason=body.reason, market=market)
            if updated is not None:
                return updated
            if body.expected_version is not None:
                raise _version_conflict(order)
            # Someone else moved it first and the caller did not pin a version: judge again.
        raise Conflict("The order keeps changing; reload it and try again", code="VERSION_CONFLICT")

    async def move(
        self, order: Order, target: OrderStatus, *, by: str, reason: str | None, market: Market | None = None
    ) -> Order | None:
        """One CAS (the caller has judged the move allowed); the winner's write records its effects
        (a cancellation: stock back, counters down), then it follows up. None: someone else won."""
        stamp = self.clock.now()
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
        written_at = self.follow_up.monotonic()
        updated = await self.store.orders.replace_if_unchanged(order, new)
        if updated is None:
            return None
        await self.follow_up.order_changed(updated, order.status, written_at=written_at, market=market)
        return updated


def _version_conflict(order: Order) -> Conflict:
    return Conflict(
        "The order has changed since you read it",
        code="VERSION_CONFLICT",
        details={"current_version": order.version, "status": order.status.value},
    )
