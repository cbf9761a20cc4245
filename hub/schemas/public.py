"""What the API and the live events show of the stored entities, built from them in one place.

The stored models (store/models.py) are what the system of record holds; the models here are what leaves
the server. Each names its fields, so a field added to a stored model stays private until it is added
here too (tests/api/test_public_models.py checks it). `of(stored)` reads the named fields from the stored
object's attributes, nested models included. The schema titles keep the OpenAPI component names
(`Order`, `Market`, ...) the contract has always used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from store.models import DeliveryOption, Locale, OrderStatus, PaymentMethod, Role


class Public(BaseModel):
    """Base of the public models: built from a stored object's attributes."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, stored: object) -> Self:
        return cls.model_validate(stored, from_attributes=True)


ID = Field(pattern=r"^[0-9a-f]{24}$")


class UserPublic(Public):
    model_config = ConfigDict(title="User")

    id: str = ID
    email: str
    name: str
    role: Role
    locale: Locale = "en"
    phone: str | None = None
    address: str | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True
    created_at: datetime


class CoordinatesPublic(Public):
    model_config = ConfigDict(title="Coordinates", extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class MarketPublic(Public):
    model_config = ConfigDict(title="Market")

    id: str = ID
    owner_id: str
    name: str
    description: str = ""
    contact_email: str
    contact_phone: str | None = None
    address: str
    coordinates: CoordinatesPublic | None = None
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


class ProductPublic(Public):
    model_config = ConfigDict(title="Product")

    id: str = ID
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


class OrderItemPublic(Public):
    model_config = ConfigDict(title="OrderItem")

    product_id: str
    name: str
    unit_price_cents: int
    quantity: int
    line_total_cents: int


class StatusChangePublic(Public):
    model_config = ConfigDict(title="StatusChange")

    status: OrderStatus
    at: datetime
    by: str  # a user id, or "system"
    reason: str | None = None


class CustomerContactPublic(Public):
    """Who to call about an order: the customer's name and phone as they were when it was placed."""

    model_config = ConfigDict(title="CustomerContact")

    name: str
    phone: str | None = None


class OrderPublic(Public):
    model_config = ConfigDict(title="Order")

    id: str = ID
    market_id: str
    customer_id: str
    # None on orders placed before the hub kept the contact.
    customer: CustomerContactPublic | None = None
    items: list[OrderItemPublic]
    total_cents: int
    currency: str
    status: OrderStatus
    status_history: list[StatusChangePublic]
    delivery_option: DeliveryOption
    payment_method: PaymentMethod
    delivery_address: str | None = None
    notes: str | None = None
    version: int
    created_at: datetime
    updated_at: datetime


# Live order events (`order:created`, `order:updated`): the payload the history stores and the streams,
# replays and webhooks carry (the history adds `stream` and `seq`).


class OrderCreatedPayload(BaseModel):
    order: OrderPublic


class OrderUpdatedPayload(BaseModel):
    order: OrderPublic
    previous_status: OrderStatus
