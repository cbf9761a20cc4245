"""The entities as the system of record holds them.

What the API and the live events show is hub/schemas/public.py, built from these. A field with
`exclude=True` is written by its store module itself, not by `store.codec.to_document`.
Ids are 24-hex strings here; `store.codec` converts to and from BSON in one place.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Locale = Literal["en", "ua"]
DeliveryOption = Literal["pickup", "delivery"]
PaymentMethod = Literal["cash", "card"]


class Role(StrEnum):
    CUSTOMER = "customer"
    MARKET_ADMIN = "market_admin"
    SUPER_ADMIN = "super_admin"


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    PREPARING = "preparing"
    READY = "ready"
    PICKED_UP = "picked_up"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=r"^[0-9a-f]{24}$")


class User(Entity):
    email: str
    name: str
    role: Role
    locale: Locale = "en"
    phone: str | None = None
    address: str | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True
    created_at: datetime


class UserRecord(User):
    """A user with what must never leave the server."""

    password_hash: str

    def public(self) -> User:
        return User.model_validate(self.model_dump(exclude={"password_hash"}))


class Coordinates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class Market(Entity):
    owner_id: str
    name: str
    description: str = ""
    contact_email: str
    contact_phone: str | None = None
    address: str
    coordinates: Coordinates | None = None
    business_hours: dict[str, str] = Field(default_factory=dict)
    delivery_options: list[DeliveryOption]
    payment_methods: list[PaymentMethod]
    currency: str = "UAH"
    is_active: bool = True
    verified: bool = False
    rating: float | None = None
    total_orders: int = 0
    total_revenue_cents: int = 0
    created_at: datetime
    updated_at: datetime
    # Set before the market's first webhook endpoint is written and never cleared: False means it has
    # none, and an order write then skips looking for them (store/webhooks.py). Never shown.
    webhooks: bool = Field(default=False, exclude=True)


class Product(Entity):
    market_id: str
    name: str
    description: str = ""
    category: str | None = None
    price_cents: int
    currency: str
    unit: str = "piece"
    stock: int
    is_available: bool = True
    created_at: datetime
    updated_at: datetime
    # False once its market is deactivated; kept on the product so public listings need no join.
    market_active: bool = Field(default=True, exclude=True)


class OrderItem(BaseModel):
    product_id: str
    name: str
    unit_price_cents: int
    quantity: int
    line_total_cents: int


class StatusChange(BaseModel):
    status: OrderStatus
    at: datetime
    by: str  # a user id, or "system"
    reason: str | None = None


class PendingEvent(BaseModel):
    """An order event written in the same write as the change it reports, not yet published.

    The order's `outbox` keeps these until the publisher has stored them in the event history, so
    a process that dies between the write and the publish leaves them for the repair pass."""

    name: Literal["order:created", "order:updated"]
    version: int


class PendingEffect(BaseModel):
    """A follow-up write of an order change, recorded in the same write as the change, not yet applied.

    `count`: add `orders` and `revenue_cents` to the market's counters; `restock`: put every line's
    quantity back on its product. The order's `effects` (keyed `{kind}:{version}`) keep these until
    they are applied, so a process that dies right after the change leaves them for the repair pass
    (docs/architecture.md, "Follow-up effects": why each is applied once)."""

    kind: Literal["count", "restock"]
    version: int
    orders: int = 0
    revenue_cents: int = 0

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.version}"


class CustomerContact(BaseModel):
    """Who to call about an order: the customer's name and phone as they were when it was placed."""

    name: str
    phone: str | None = None


class Order(Entity):
    market_id: str
    customer_id: str
    # None on orders placed before the hub kept the contact.
    customer: CustomerContact | None = None
    items: list[OrderItem]
    total_cents: int
    currency: str
    status: OrderStatus
    status_history: list[StatusChange]
    delivery_option: DeliveryOption
    payment_method: PaymentMethod
    delivery_address: str | None = None
    notes: str | None = None
    version: int
    created_at: datetime
    updated_at: datetime
    # Stored with the order, never shown: what the API and the events carry is the order itself.
    outbox: list[PendingEvent] = Field(default_factory=list, exclude=True)
    effects: dict[str, PendingEffect] = Field(default_factory=dict, exclude=True)
    # The Idempotency-Key that placed it ("{customer_id}:{key}") and its body's hash; and, until the
    # stock holds on its products are released, when they were taken (store/orders.py). Every write
    # of the order carries them.
    idempotency: str | None = Field(default=None, exclude=True)
    idempotency_hash: str | None = Field(default=None, exclude=True)
    holds_ms: int | None = Field(default=None, exclude=True)

    def at_version(self, version: int) -> Order:
        """The order as it was when its `version` was written: every write adds one status change and
        stamps `updated_at` with it, so the history up to that version is the whole difference."""
        history = self.status_history[:version]
        return self.model_copy(
            update={
                "status_history": history,
                "status": history[-1].status,
                "version": version,
                "updated_at": history[-1].at,
                "outbox": [],
                "effects": {},
            }
        )
