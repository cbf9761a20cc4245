"""/metrics: Prometheus text of this app's own registry; counters move with requests and failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hub.app import create_app
from hub.keys import email_notices_key
from tests.helpers.api import expect_error, make_market, make_product, metric_value, read_metric, sign_up

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
MISSING_MARKET = "/api/v1/markets/0123456789abcdef01234567"


async def test_requests_by_route_template_and_status(client: TestClient) -> None:
    for _ in range(2):
        assert (await client.get("/api/v1/markets")).status == 200
    await expect_error(await client.get(MISSING_MARKET), 404, "NOT_FOUND")

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    families = {family.name for family in text_string_to_metric_families(text)}
    for name in (
        "hub_http_requests", "hub_http_request_duration_seconds", "hub_socketio_connections", "hub_events_published",
        "hub_events_delivered", "hub_events_publish_failed", "hub_event_replays", "hub_slow_client_disconnects",
        "hub_rate_limited_requests", "hub_database_errors", "hub_email_failures",
    ):  # fmt: skip
        assert name in families, name
    requests = "hub_http_requests_total"
    assert metric_value(text, requests, method="GET", route="/api/v1/markets", status="200") == 2
    # The route template, not the path: ids do not make new series.
    assert metric_value(text, requests, method="GET", route="/api/v1/markets/{id}", status="404") == 1
    assert MISSING_MARKET not in text
    assert metric_value(text, "hub_http_request_duration_seconds_count", method="GET", route="/api/v1/markets") == 2
    # The scrape itself is counted once it has been answered.
    assert await read_metric(client, requests, route="/metrics", status="200") == 1


async def test_each_app_has_its_own_registry(aiohttp_client: MakeClient, make_settings: Any) -> None:
    first = await aiohttp_client(create_app(make_settings()))
    second = await aiohttp_client(create_app(make_settings()))
    for _ in range(3):
        assert (await first.get("/health")).status == 200
    assert await read_metric(first, "hub_http_requests_total", route="/health") == 3
    assert await read_metric(second, "hub_http_requests_total", route="/health") == 0


async def test_database_errors_counted(aiohttp_client: MakeClient, make_settings: Any) -> None:
    # Nothing listens on port 1: the database never answers.
    settings = make_settings(mongodb_url="mongodb://127.0.0.1:1/?directConnection=true", db_timeout_seconds=0.3)
    client = await aiohttp_client(create_app(settings))
    await expect_error(await client.get("/api/v1/markets"), 503, "UNAVAILABLE")
    assert await read_metric(client, "hub_database_errors_total") == 1
    assert await read_metric(client, "hub_http_requests_total", route="/api/v1/markets", status="503") == 1


async def test_rate_limited_requests_counted(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await aiohttp_client(create_app(make_settings(rate_limit_per_minute=1)))
    assert (await client.get("/api/v1/products")).status == 200
    for _ in range(2):
        await expect_error(await client.get("/api/v1/products"), 429, "RATE_LIMITED")
    assert await read_metric(client, "hub_rate_limited_requests_total", scope="ip") == 2
    assert await read_metric(client, "hub_http_requests_total", route="/api/v1/products", status="429") == 2


async def test_email_failures_counted(aiohttp_client: MakeClient, make_settings: Any) -> None:
    # Nothing listens on port 1: every order email fails.
    app = create_app(make_settings(email_service_url="smtp://127.0.0.1:1"))
    client = await aiohttp_client(app)
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    customer = await sign_up(client)
    body = {"market_id": market["id"], "items": [{"product_id": product["id"], "quantity": 1}],
            "delivery_option": "pickup", "payment_method": "cash"}  # fmt: skip
    response = await client.post("/api/v1/orders", json=body, headers=customer.headers)
    assert response.status == 201, await response.text()
    await asyncio.wait_for(app[email_notices_key].idle(), 10)
    assert await read_metric(client, "hub_email_failures_total") >= 1
