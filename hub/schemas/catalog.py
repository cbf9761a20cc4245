"""Markets and products: bodies and queries."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints, field_validator

from hub.schemas.common import (
    DISTINCT_ITEMS,
    Input,
    LongText,
    NotBlankInSchema,
    ObjectIdStr,
    Page,
    PlainKeys,
    SearchText,
    ShortText,
    free_form_schema,
    not_null,
)
from hub.schemas.users import Address, Phone
from store.models import Coordinates, DeliveryOption, PaymentMethod

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), NotBlankInSchema()]
Unit = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), NotBlankInSchema()]
HoursText = Annotated[str, StringConstraints(max_length=50)]
BusinessHours = Annotated[dict[str, HoursText], Field(max_length=14), PlainKeys,
                          free_form_schema({"type": "string", "maxLength": 50}, max_entries=14)]  # fmt: skip
# A null description clears it: the entities keep "" rather than null.
Description = Annotated[LongText | None, AfterValidator(lambda value: value or "")]


def _distinct(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("values must be distinct")
    return values


class MarketFields(Input):
    description: Description = None
    contact_phone: Phone | None = None
    coordinates: Coordinates | None = None
    business_hours: BusinessHours | None = None


class MarketCreate(MarketFields):
    name: ShortText
    contact_email: EmailStr
    address: Address
    delivery_options: list[DeliveryOption] = Field(
        default=["pickup"], min_length=1, max_length=2, json_schema_extra=DISTINCT_ITEMS
    )
    payment_methods: list[PaymentMethod] = Field(
        default=["cash", "card"], min_length=1, max_length=2, json_schema_extra=DISTINCT_ITEMS
    )
    currency: Currency = "UAH"
    owner_id: ObjectIdStr | None = None

    _distinct_options = field_validator("delivery_options", "payment_methods")(_distinct)


class MarketUpdate(MarketFields):
    name: ShortText | None = None
    contact_email: EmailStr | None = None
    address: Address | None = None
    delivery_options: list[DeliveryOption] | None = Field(
        default=None, min_length=1, max_length=2, json_schema_extra=DISTINCT_ITEMS
    )
    payment_methods: list[PaymentMethod] | None = Field(
        default=None, min_length=1, max_length=2, json_schema_extra=DISTINCT_ITEMS
    )
    currency: Currency | None = None
    # super_admin only (403 for the owner): brings a deleted market back, or takes one down.
    is_active: bool | None = None

    _distinct_options = field_validator("delivery_options", "payment_methods")(_distinct)
    _not_null = not_null(
        "name", "contact_email", "address", "delivery_options", "payment_methods", "currency", "business_hours",
        "is_active",
    )  # fmt: skip


class MarketQuery(Page):
    verified: bool | None = None
    search: SearchText | None = None


class ProductCreate(Input):
    market_id: ObjectIdStr
    name: ShortText
    description: Description = None
    category: Category | None = None
    price_cents: int = Field(gt=0, le=10**10)
    unit: Unit = "piece"
    stock: int = Field(ge=0, le=10**9)
    is_available: bool = True


class ProductUpdate(Input):
    name: ShortText | None = None
    description: Description = None
    category: Category | None = None
    price_cents: int | None = Field(default=None, gt=0, le=10**10)
    unit: Unit | None = None
    stock: int | None = Field(default=None, ge=0, le=10**9)
    is_available: bool | None = None

    _not_null = not_null("name", "price_cents", "unit", "stock", "is_available")


class ProductQuery(Page):
    market_id: ObjectIdStr | None = None
    search: SearchText | None = None
    category: Category | None = None
    in_stock: bool | None = None
