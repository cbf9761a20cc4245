"""Analytics: queries and replies (DESIGN.md, Analytics), and the live stats pushed to dashboards."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from hub.schemas.common import Input

Bucket = Literal["hour", "day"]
_ISO_DATE_TIME = r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?)?$"


def _iso_8601(value: object) -> object:
    # pydantic would also take a number ("0.5") as Unix seconds; the contract says ISO 8601.
    if isinstance(value, str) and not re.fullmatch(_ISO_DATE_TIME, value):
        raise ValueError("must be an ISO 8601 date or date-time")
    return value


Timestamp = Annotated[
    datetime, BeforeValidator(_iso_8601), WithJsonSchema({"type": "string", "pattern": _ISO_DATE_TIME})
]


class PeriodQuery(Input):
    """`from`/`to` are ISO 8601 (UTC when no offset is given); default: the last 24 hours."""

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
