"""Analytics figures against values the test computes itself from the orders it made."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.keys import analytics_key, store_key
from hub.settings import Settings
from tests.helpers.api import (
    expect_error,
    make_market,
    make_product,
    make_super_admin,
    place_order,
    set_order_status,
    sign_up,
)

HOUR = 3_600_000
DAY = 24 * HOUR


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def figures(orders: list[dict[str, Any]]) -> tuple[int, int, int]:
    kept = [order for order in orders if order["status"] != "cancelled"]
    revenue = sum(order["total_cents"] for order in kept)
    return len(orders), revenue, round(revenue / len(kept)) if kept else 0


async def test_market_analytics_match_an_independent_count(
    client: TestClient, app: web.Application, settings: Settings
) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(client, owner)
    apples = await make_product(client, owner, market["id"], name="Apples", price_cents=250, stock=1000)
    honey = await make_product(client, owner, market["id"], name="Honey", price_cents=1333, stock=1000)
    anchor = (int(datetime.now(UTC).timestamp() * 1000) // DAY - 3) * DAY  # midnight UTC, 3 days ago
    # (hours after the anchor, lines, final status): some in the period, some before, some after.
    plan = [
        (0.1, [(apples, 2)], "pending"),
        (0.5, [(honey, 1), (apples, 1)], "confirmed"),
        (0.9, [(honey, 3)], "cancelled"),
        (3.2, [(apples, 5)], "picked_up"),
        (23.99, [(honey, 2)], "pending"),
        (25.0, [(apples, 1), (honey, 1)], "cancelled"),
        (30.5, [(honey, 1)], "preparing"),
        (-2.0, [(apples, 4)], "pending"),  # the previous period
        (-20.0, [(honey, 2)], "cancelled"),  # the previous period
        (-49.0, [(apples, 9)], "pending"),  # before both
        (49.0, [(apples, 7)], "pending"),  # after the period
    ]
    walks = {
        "confirmed": ["confirmed"],
        "preparing": ["confirmed", "preparing"],
        "cancelled": ["cancelled"],
        "picked_up": ["confirmed", "preparing", "ready", "picked_up"],
        "pending": [],
    }
    orders = []
    collection = app[store_key].orders.collection
    for hours, lines, status in plan:
        response = await place_order(client, customer, market["id"], [(product["id"], qty) for product, qty in lines])
        order = await response.json()
        for step in walks[status]:
            assert (await set_order_status(client, owner, order["id"], step)).status == 200
        created_ms = anchor + int(hours * HOUR)
        await collection.update_one({"_id": order["id"]}, {"$set": {"created_ms": created_ms}})
        orders.append({**order, "status": status, "created_ms": created_ms})

    def expected(from_ms: int, to_ms: int, bucket_ms: int) -> dict[str, Any]:
        inside = [order for order in orders if from_ms <= order["created_ms"] < to_ms]
        before = [order for order in orders if 2 * from_ms - to_ms <= order["created_ms"] < from_ms]
        total, revenue, average = figures(inside)
        products: dict[str, list[Any]] = {}
        for order in inside:
            if order["status"] != "cancelled":
                for item in order["items"]:
                    entry = products.setdefault(item["product_id"], [item["name"], 0, 0])
                    entry[1] += item["quantity"]
                    entry[2] += item["line_total_cents"]
        top = sorted(
            (
                {"product_id": pid, "name": name, "quantity": qty, "revenue_cents": cents}
                for pid, (name, qty, cents) in products.items()
            ),
            key=lambda row: -row["revenue_cents"],
        )
        series = []
        start = from_ms - from_ms % bucket_ms
        while start < to_ms:
            in_bucket = [order for order in inside if start <= order["created_ms"] < start + bucket_ms]
            series.append({"start": iso(start), "orders": len(in_bucket), "revenue_cents": figures(in_bucket)[1]})
            start += bucket_ms
        previous_total, previous_revenue, previous_average = figures(before)
        by_status = Counter(order["status"] for order in inside)
        return {
            "orders_total": total,
            "revenue_cents": revenue,
            "average_order_value_cents": average,
            "orders_by_status": {
                status: by_status.get(status, 0)
                for status in (
                    "pending",
                    "confirmed",
                    "preparing",
                    "ready",
                    "picked_up",
                    "out_for_delivery",
                    "delivered",
                    "cancelled",
                )
            },
            "top_products": top,
            "timeseries": series,
            "previous": {
                "orders_total": previous_total,
                "revenue_cents": previous_revenue,
                "average_order_value_cents": previous_average,
            },
        }

    url = f"/api/v1/analytics/markets/{market['id']}"
    cases = [
        (anchor, anchor + 2 * DAY, "hour", 48),
        (anchor, anchor + 2 * DAY, "day", 2),
        (anchor + HOUR // 2, anchor + 26 * HOUR, "hour", 26),  # not aligned: buckets still start on the hour
        (anchor - DAY, anchor + 3 * DAY, "day", 4),
    ]
    for from_ms, to_ms, bucket, buckets in cases:
        response = await client.get(
            url, params={"from": iso(from_ms), "to": iso(to_ms), "bucket": bucket}, headers=owner.headers
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        assert (body["market_id"], body["bucket"], body["from"], body["to"]) == (
            market["id"],
            bucket,
            iso(from_ms),
            iso(to_ms),
        )
        assert len(body["timeseries"]) == buckets
        want = expected(from_ms, to_ms, {"hour": HOUR, "day": DAY}[bucket])
        assert {key: body[key] for key in want} == want, (from_ms, to_ms, bucket)
    assert expected(anchor, anchor + 2 * DAY, HOUR)["orders_total"] == 7  # the case covers every kind of order

    # Defaults: the last 24 hours, hourly; none of these orders is that recent.
    default = await (await client.get(url, headers=owner.headers)).json()
    assert (default["orders_total"], len(default["timeseries"]), default["bucket"]) == (0, 25, "hour")

    # Who may look.
    admin = await make_super_admin(settings, client)
    assert (await client.get(url, headers=admin.headers)).status == 200
    await expect_error(await client.get(url, headers=customer.headers), 403, "FORBIDDEN")
    stranger = await sign_up(client, "market_admin")
    await expect_error(await client.get(url, headers=stranger.headers), 403, "FORBIDDEN")
    await expect_error(await client.get(url), 401, "UNAUTHORIZED")
    await expect_error(
        await client.get("/api/v1/analytics/markets/" + "0" * 24, headers=admin.headers), 404, "NOT_FOUND"
    )
    bad_range = {"from": iso(anchor), "to": iso(anchor - HOUR)}
    await expect_error(await client.get(url, params=bad_range, headers=owner.headers), 422, "VALIDATION_ERROR")
    await expect_error(await client.get(url, params={"bucket": "week"}, headers=owner.headers), 422, "VALIDATION_ERROR")

    # Platform: every market in the period, super_admin only.
    platform = await client.get(
        "/api/v1/analytics/platform", params={"from": iso(anchor), "to": iso(anchor + 2 * DAY)}, headers=admin.headers
    )
    assert platform.status == 200, await platform.text()
    summary = await platform.json()
    total, revenue, _ = figures([order for order in orders if anchor <= order["created_ms"] < anchor + 2 * DAY])
    assert (summary["orders_total"], summary["revenue_cents_by_currency"]) == (total, {"UAH": revenue})
    assert summary["top_markets"] == [
        {
            "market_id": market["id"],
            "name": market["name"],
            "currency": "UAH",
            "orders_total": total,
            "revenue_cents": revenue,
        }
    ]
    await expect_error(await client.get("/api/v1/analytics/platform", headers=owner.headers), 403, "FORBIDDEN")

    # Live stats: since 00:00 UTC today. Two fresh orders, one of them cancelled.
    fresh = [await (await place_order(client, customer, market["id"], [(apples["id"], n)])).json() for n in (1, 3)]
    assert (await set_order_status(client, customer, fresh[0]["id"], "cancelled")).status == 200
    stats = await app[analytics_key].market_stats(market["id"])
    assert (stats.orders_total, stats.revenue_cents, stats.average_order_value_cents) == (2, 750, 750)
    assert stats.orders_by_status["cancelled"] == 1
    assert stats.orders_by_status["pending"] == 1
    assert stats.at - datetime.now(UTC) < timedelta(seconds=5)
