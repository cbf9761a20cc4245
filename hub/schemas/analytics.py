"""Analytics: queries and replies (DESIGN.md, Analytics), and the live stats pushed to dashboards."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from hub.schemas.common import Input

Bucket = Literal["hour", "day"]
# RFC 3339 date-time (OpenAPI's `date-time` format): a date, a time and an offset (Z for UTC).
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"


def _rfc_3339(value: object) -> object:
    # pydantic would also take a number ("0.5") as Unix seconds, or a date alone, or no offset.
    if isinstance(value, str) and not re.fullmatch(_DATE_TIME, value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T09:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_rfc_3339), WithJsonSchema({"type": "string", "format": "date-time"})]


class PeriodQuery(Input):
    """`from`/`to` are RFC 3339 date-times with an offset (`Z` for UTC); default: the last 24 hours."""

    from_: Timestamp | None = Field(default=None, validation_alias="from")
    to: Timestamp | None = None


class MarketAnalyticsQuery(PeriodQuery):
    bucket: Bucket = "hour"


class PeriodFigures(BaseModel):
    orders_total: int
    revenue_cents: int
    average_order_value_cents: int


class TopProduct(BaseModel):
    product_id: str
    name: str
    quantity: int
    revenue_cents: int


class TimeBucket(BaseModel):
    start: datetime
    orders: int
    revenue_cents: int


class MarketAnalytics(BaseModel):
    """`orders_total`, `orders_by_status` and `timeseries[].orders` count every order placed in the
    period; `revenue_cents`, the average and `top_products` count orders that are not cancelled."""

    model_config = ConfigDict(serialize_by_alias=True)

    market_id: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    bucket: Bucket
    currency: str
    orders_total: int
    orders_by_status: dict[str, int]
    revenue_cents: int
    average_order_value_cents: int
    top_products: list[TopProduct]
    timeseries: list[TimeBucket]
    previous: PeriodFigures


class TopMarket(BaseModel):
    market_id: str
    name: str
    currency: str
    orders_total: int
    revenue_cents: int


class PlatformAnalytics(BaseModel):
    """Totals over every market; revenue per currency, since markets sell in their own."""

    model_config = ConfigDict(serialize_by_alias=True)

    from_: datetime = Field(serialization_alias="from")
    to: datetime
    orders_total: int
    orders_by_status: dict[str, int]
    revenue_cents_by_currency: dict[str, int]
    markets_active: int
    users_total: int
    top_markets: list[TopMarket]


class MarketStats(BaseModel):
    """The live figures of one market since the start of the current UTC day."""

    market_id: str
    orders_total: int
    orders_by_status: dict[str, int]
    revenue_cents: int
    average_order_value_cents: int
    at: datetime
