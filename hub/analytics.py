"""Market and platform statistics, computed by the database (store/analytics.py).

Definitions (DESIGN.md, Analytics): a period is [from, to) on the order's creation time.
`orders_total` and `orders_by_status` count every order placed in the period, whatever its status
now; revenue, the average order value and top products count orders that are not cancelled. The
average is revenue / non-cancelled orders, rounded half up to a whole cent (0 with no orders).
Time buckets are aligned to UTC hours or days and cover the whole range, empty ones included.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from auth.policy import may_view_market_analytics, may_view_platform_analytics
from hub.errors import Forbidden, NotFound, ValidationFailed
from hub.schemas.analytics import (
    Bucket,
    MarketAnalytics,
    MarketAnalyticsQuery,
    MarketStats,
    PeriodFigures,
    PeriodQuery,
    PlatformAnalytics,
    TimeBucket,
    TopMarket,
    TopProduct,
)
from store.analytics import period_match
from store.codec import epoch_ms, now
from store.database import Store
from store.models import OrderStatus, User

DEFAULT_PERIOD = timedelta(hours=24)
BUCKET_MS: dict[Bucket, int] = {"hour": 3_600_000, "day": 86_400_000}
MAX_BUCKETS = 2000
TOP_PRODUCTS = 10
TOP_MARKETS = 10


def average(revenue_cents: int, orders: int) -> int:
    return (2 * revenue_cents + orders) // (2 * orders) if orders else 0


def _utc(stamp: datetime) -> datetime:
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class _Tally:
    """Per-status counts and sums from one `by_status` aggregation, read by the definitions above."""

    def __init__(self, rows: dict[str, tuple[int, int]]) -> None:
        self.by_status = {status.value: rows.get(status.value, (0, 0))[0] for status in OrderStatus}
        self.orders_total = sum(orders for orders, _ in rows.values())
        kept = [value for status, value in rows.items() if status != OrderStatus.CANCELLED.value]
        self.revenue_cents = sum(revenue for _, revenue in kept)
        self.kept_orders = sum(orders for orders, _ in kept)

    @property
    def average_cents(self) -> int:
        return average(self.revenue_cents, self.kept_orders)


class Analytics:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.figures = store.order_figures

    @staticmethod
    def _period(query: PeriodQuery) -> tuple[int, int]:
        to = _utc(query.to) if query.to is not None else now()
        start = _utc(query.from_) if query.from_ is not None else to - DEFAULT_PERIOD
        if start >= to:
            problem = {"loc": ["query", "from"], "msg": "from must be before to", "type": "value_error"}
            raise ValidationFailed(details=[problem])
        return epoch_ms(start), epoch_ms(to)

    async def market(self, user: User, market_id: str, query: MarketAnalyticsQuery) -> MarketAnalytics:
        market = await self.store.markets.get(market_id)
        if market is None:
            raise NotFound("Market not found")
        if not may_view_market_analytics(user, market):
            raise Forbidden("Only the market's owner or a super_admin may see its statistics")
        from_ms, to_ms = self._period(query)
        bucket_ms = BUCKET_MS[query.bucket]
        first_bucket = from_ms - from_ms % bucket_ms
        if (to_ms - first_bucket) / bucket_ms > MAX_BUCKETS:
            problem = {"loc": ["query", "bucket"], "msg": f"at most {MAX_BUCKETS} buckets", "type": "value_error"}
            raise ValidationFailed(details=[problem])
        match = period_match(from_ms, to_ms, market_id=market.id)
        previous_match = period_match(2 * from_ms - to_ms, from_ms, market_id=market.id)
        rows, previous_rows, top, series = await asyncio.gather(
            self.figures.by_status(match),
            self.figures.by_status(previous_match),
            self.figures.top_products(match, limit=TOP_PRODUCTS),
            self.figures.timeseries(match, bucket_ms=bucket_ms),
        )
        tally, previous = _Tally(rows), _Tally(previous_rows)
        return MarketAnalytics(
            market_id=market.id,
            from_=_from_ms(from_ms),
            to=_from_ms(to_ms),
            bucket=query.bucket,
            currency=market.currency,
            orders_total=tally.orders_total,
            orders_by_status=tally.by_status,
            revenue_cents=tally.revenue_cents,
            average_order_value_cents=tally.average_cents,
            top_products=[TopProduct.model_validate(row) for row in top],
            timeseries=[
                TimeBucket(
                    start=_from_ms(start),
                    orders=series.get(start, (0, 0))[0],
                    revenue_cents=series.get(start, (0, 0))[1],
                )
                for start in range(first_bucket, to_ms, bucket_ms)
            ],
            previous=PeriodFigures(
                orders_total=previous.orders_total,
                revenue_cents=previous.revenue_cents,
                average_order_value_cents=previous.average_cents,
            ),
        )

    async def platform(self, user: User, query: PeriodQuery) -> PlatformAnalytics:
        if not may_view_platform_analytics(user):
            raise Forbidden("Only a super_admin may see platform statistics")
        from_ms, to_ms = self._period(query)
        match = period_match(from_ms, to_ms)
        rows, revenue, markets, active, users = await asyncio.gather(
            self.figures.by_status(match),
            self.figures.revenue_by_currency(match),
            self.figures.by_market(match, limit=TOP_MARKETS),
            self.figures.active_markets(),
            self.figures.users_total(),
        )
        names = await self.figures.market_names([market_id for market_id, _, _ in markets])
        tally = _Tally(rows)
        return PlatformAnalytics(
            from_=_from_ms(from_ms),
            to=_from_ms(to_ms),
            orders_total=tally.orders_total,
            orders_by_status=tally.by_status,
            revenue_cents_by_currency=revenue,
            markets_active=active,
            users_total=users,
            top_markets=[
                TopMarket(
                    market_id=market_id,
                    name=names.get(market_id, ("", ""))[0],
                    currency=names.get(market_id, ("", "UAH"))[1],
                    orders_total=orders,
                    revenue_cents=cents,
                )
                for market_id, orders, cents in markets
            ],
        )

    async def market_stats(self, market_id: str) -> MarketStats:
        """Live figures for the dashboard's `stats` event: orders placed since the start of the
        current UTC day (00:00 UTC) until now, by the same definitions as the analytics above.
        No authorization here: the caller (the dashboard namespace) has already checked the room."""
        stamp = now()
        day_start = stamp.replace(hour=0, minute=0, second=0, microsecond=0)
        match = period_match(epoch_ms(day_start), epoch_ms(stamp) + 1, market_id=market_id)
        tally = _Tally(await self.figures.by_status(match))
        return MarketStats(
            market_id=market_id,
            orders_total=tally.orders_total,
            orders_by_status=tally.by_status,
            revenue_cents=tally.revenue_cents,
            average_order_value_cents=tally.average_cents,
            at=stamp,
        )
