"""What leaves the server is the public models (hub/schemas/public.py), never the stored ones: a field the
store keeps (or gains tomorrow) is in no reply and no live event unless a public model names it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from hub.realtime.publisher import Publisher
from hub.schemas.public import MarketPublic, OrderPublic, ProductPublic, Public, UserPublic
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
    UserRecord,
)
from tests.helpers.api import make_market, make_product, place_order, sign_up

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MARKET_ID, USER_ID, PRODUCT_ID, ORDER_ID = "a" * 24, "b" * 24, "c" * 24, "d" * 24


def _order(**fields: Any) -> Order:
    history = [StatusChange(status=OrderStatus.PENDING, at=AT, by=USER_ID),
               StatusChange(status=OrderStatus.CONFIRMED, at=AT, by=USER_ID)]  # fmt: skip
    line = OrderItem(product_id=PRODUCT_ID, name="Apples", unit_price_cents=100, quantity=2, line_total_cents=200)
    return Order(id=ORDER_ID, market_id=MARKET_ID, customer_id=USER_ID, items=[line], total_cents=200,
                 currency="UAH", status=OrderStatus.CONFIRMED, status_history=history, delivery_option="pickup",
                 payment_method="cash", version=2, created_at=AT, updated_at=AT, **fields)  # fmt: skip


STORED: list[tuple[BaseModel, type[Public]]] = [
    (UserRecord(id=USER_ID, email="u@example.com", name="U", role=Role.CUSTOMER, created_at=AT, password_hash="h"),
     UserPublic),
    (Market(id=MARKET_ID, owner_id=USER_ID, name="M", contact_email="m@example.com", address="1 Square",
            delivery_options=["pickup"], payment_methods=["cash"], created_at=AT, updated_at=AT, webhooks=True),
     MarketPublic),
    (Product(id=PRODUCT_ID, market_id=MARKET_ID, name="Apples", price_cents=100, currency="UAH", stock=3,
             created_at=AT, updated_at=AT, market_active=False),
     ProductPublic),
    (_order(outbox=[PendingEvent(name="order:updated", version=2)],
            effects={"count:1": PendingEffect(kind="count", version=1, orders=1)},
            idempotency=f"{USER_ID}:key", idempotency_hash="hash", holds_ms=123),
     OrderPublic),
]  # fmt: skip
HIDDEN = {"password_hash", "webhooks", "market_active", "outbox", "effects", "idempotency", "idempotency_hash",
          "holds_ms"}  # fmt: skip


def test_stored_only_fields_are_in_no_public_model() -> None:
    for stored, public in STORED:
        shown = public.of(stored).model_dump(mode="json")
        assert set(shown) == set(public.model_fields)
        assert not HIDDEN & set(shown), type(stored).__name__


def test_a_field_the_store_gains_stays_private() -> None:
    for stored, public in STORED:
        grown = type("Grown", (type(stored),), {"__annotations__": {"internal_note": str}})
        instance = grown.model_validate({**stored.__dict__, "internal_note": "staff only"})
        assert instance.internal_note == "staff only"
        assert "internal_note" not in public.of(instance).model_dump(mode="json")


def test_order_event_payloads_carry_the_public_order() -> None:
    order = STORED[3][0]
    assert isinstance(order, Order)
    created = Publisher.payload(order, PendingEvent(name="order:created", version=1))
    updated = Publisher.payload(order, PendingEvent(name="order:updated", version=2))
    assert set(created) == {"order"}
    assert set(updated) == {"order", "previous_status"}
    assert updated["previous_status"] == "pending"
    for payload in (created, updated):
        assert set(payload["order"]) == set(OrderPublic.model_fields)
    assert created["order"]["status"] == "pending"
    assert created["order"]["version"] == 1


async def test_replies_show_no_stored_only_field(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    placed = await place_order(client, customer, market["id"], [(product["id"], 1)], key="public-models")
    assert placed.status == 201, await placed.text()
    replies = {
        "order": (await placed.json(), OrderPublic),
        "market": (market, MarketPublic),
        "product": (product, ProductPublic),
        "user": (await (await client.get("/api/v1/users/me", headers=customer.headers)).json(), UserPublic),
    }
    for name, (reply, public) in replies.items():
        assert set(reply) == set(public.model_fields), name
        assert not HIDDEN & set(reply), name
