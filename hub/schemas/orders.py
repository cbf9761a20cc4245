"""Orders: the placement body, the status change body, the list query."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from hub.schemas.common import Input, ObjectIdStr, Page
from hub.schemas.users import Address
from store.models import DeliveryOption, OrderStatus, PaymentMethod

MAX_IDEMPOTENCY_KEY_CHARS = 255
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)]


class OrderLineIn(Input):
    product_id: ObjectIdStr
    quantity: int = Field(ge=1, le=1000)


class OrderCreate(Input):
    # The spec says what `_address_for_delivery` checks, so that generated clients and fuzzers know.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"delivery_option": {"const": "delivery"}}, "required": ["delivery_option"]},
            "then": {"required": ["delivery_address"], "properties": {"delivery_address": {"type": "string"}}},
        }
    )

    market_id: ObjectIdStr
    items: list[OrderLineIn] = Field(min_length=1, max_length=100)
    delivery_option: DeliveryOption
    payment_method: PaymentMethod
    delivery_address: Address | None = None
    notes: Notes | None = None

    @field_validator("items")
    @classmethod
    def _distinct_products(cls, items: list[OrderLineIn]) -> list[OrderLineIn]:
        ids = [item.product_id.lower() for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product may appear only once")
        return items

    @model_validator(mode="after")
    def _address_for_delivery(self) -> OrderCreate:
        if self.delivery_option == "delivery" and not self.delivery_address:
            raise ValueError("delivery_address is required for delivery")
        return self


class IdempotencyHeader(BaseModel):
    """The optional `Idempotency-Key` header, validated like a body field."""

    key: IdempotencyKey | None = None


class OrderStatusChange(Input):
    status: OrderStatus
    expected_version: int | None = Field(default=None, ge=1)
    reason: Reason | None = None


class OrderQuery(Page):
    status: OrderStatus | None = None
    market_id: ObjectIdStr | None = None
