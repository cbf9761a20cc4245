"""The audit's smaller gaps (issue 11), each through the public interfaces of a real server: map keys
MongoDB cannot store, strict JSON types, security headers, the currency lock and market
reactivation, /ready with Redis down, the default namespace, and a dashboard's default market."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from tests.helpers.api import (
    expect_error,
    make_market,
    make_product,
    make_super_admin,
    place_order,
    server_url,
    sign_up,
)
from tests.helpers.processes import RedisServer
from tests.helpers.socket_clients import LiveClient, open_shop


async def test_map_keys_mongodb_cannot_store_are_422(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    base = {"name": "Keys", "contact_email": owner.email, "address": "1 Square"}
    for key in ("a\u0000b", "$where", "a.b", "x$"):
        response = await client.post("/api/v1/markets", json={**base, "business_hours": {key: "9-17"}},
                                     headers=owner.headers)  # fmt: skip
        await expect_error(response, 422, "VALIDATION_ERROR")
        response = await client.patch("/api/v1/users/me", json={"preferences": {"ok": {key: 1}}},
                                      headers=owner.headers)  # fmt: skip
        await expect_error(response, 422, "VALIDATION_ERROR")
    market = await make_market(client, owner, business_hours={"mon": "9-17"})
    response = await client.patch(f"/api/v1/markets/{market['id']}", json={"business_hours": {"a\u0000b": "9-17"}},
                                  headers=owner.headers)  # fmt: skip
    await expect_error(response, 422, "VALIDATION_ERROR")
    response = await client.get(f"/api/v1/markets/{market['id']}")
    assert (await response.json())["business_hours"] == {"mon": "9-17"}


async def test_request_bodies_are_typed_strictly_as_json(client: TestClient) -> None:
    shop = await open_shop(client)
    body = {"market_id": shop.market_id, "name": "Pears", "price_cents": 100, "stock": 5}
    for field, value in (("price_cents", True), ("price_cents", "12"), ("stock", "12"), ("stock", 1.5)):
        response = await client.post("/api/v1/products", json={**body, field: value}, headers=shop.admin.headers)
        await expect_error(response, 422, "VALIDATION_ERROR")
    for quantity in (True, "1"):
        response = await place_order(client, shop.customers[0], shop.market_id, [(shop.product["id"], quantity)])  # type: ignore[list-item]
        await expect_error(response, 422, "VALIDATION_ERROR")
    # The same types still arrive as text in a query string.
    response = await client.get("/api/v1/products", params={"in_stock": "true", "limit": "5"})
    assert response.status == 200, await response.text()
    # 5.0 is an integer in JSON (and in JSON Schema), as in the OpenAPI document.
    response = await client.post("/api/v1/products", json={**body, "stock": 5.0}, headers=shop.admin.headers)
    assert (response.status, (await response.json())["stock"]) == (201, 5)


async def test_security_headers_on_every_response(client: TestClient) -> None:
    for path in ("/api/v1/markets", "/api/v1/nothing-here", "/health", "/api/openapi.json", "/api/docs", "/dashboard",
                 "/static/app.css", "/socket.io/?EIO=4&transport=polling"):  # fmt: skip
        response = await client.get(path)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        server = response.headers.get("Server", "")
        assert "aiohttp" not in server.lower(), (path, server)
        assert "python" not in server.lower(), (path, server)
        if response.content_type == "text/html":
            assert "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", ""), path
    docs = await client.get("/api/docs")
    assert docs.content_type == "text/html"
    assert "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]


async def test_currency_is_locked_once_a_market_has_orders(client: TestClient, settings: Settings) -> None:
    shop = await open_shop(client)
    url = f"/api/v1/markets/{shop.market_id}"
    response = await client.patch(url, json={"currency": "EUR"}, headers=shop.admin.headers)
    assert response.status == 200, await response.text()
    product = await client.get(f"/api/v1/products/{shop.product['id']}")
    assert (await product.json())["currency"] == "EUR"
    placed = await place_order(client, shop.customers[0], shop.market_id, [(shop.product["id"], 1)])
    assert placed.status == 201, await placed.text()
    root = await make_super_admin(settings, client)
    for actor in (shop.admin, root):
        response = await client.patch(url, json={"currency": "UAH"}, headers=actor.headers)
        await expect_error(response, 409, "CURRENCY_LOCKED")
    # Naming the currency it already has is no change.
    response = await client.patch(url, json={"currency": "EUR", "name": "Renamed"}, headers=shop.admin.headers)
    assert response.status == 200, await response.text()


async def test_a_super_admin_brings_a_deleted_market_back(client: TestClient, settings: Settings) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    url = f"/api/v1/markets/{market['id']}"
    assert (await client.delete(url, headers=owner.headers)).status == 204
    assert (await client.get(url)).status == 404
    response = await client.patch(url, json={"is_active": True}, headers=owner.headers)
    await expect_error(response, 403, "FORBIDDEN")  # a field only a super_admin may set
    root = await make_super_admin(settings, client)
    response = await client.patch(url, json={"is_active": True}, headers=root.headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["is_active"] is True
    assert (await client.get(url)).status == 200
    assert (await client.get(f"/api/v1/products/{product['id']}")).status == 200


async def test_ready_says_503_while_the_configured_redis_does_not_answer(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    make_settings: Callable[..., Settings],
    private_redis: RedisServer,
) -> None:
    app: web.Application = create_app(make_settings(redis_url=private_redis.url))
    client = await aiohttp_client(app)
    ready = await client.get("/ready")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["checks"] == {"database": "ok", "redis": "ok"}
    private_redis.stop()
    ready = await client.get("/ready")
    assert ready.status == 503, await ready.text()
    assert (await ready.json())["checks"] == {"database": "ok", "redis": "unavailable"}


async def test_the_default_namespace_accepts_no_connection(client: TestClient) -> None:
    customer = await sign_up(client)
    for auth in (None, {"token": customer.token}):
        assert await LiveClient(server_url(client), "/", auth).refused_with() is not None
    # The same client reaches a real namespace (the refusal is about `/`, not the client).
    orders = LiveClient(server_url(client), "/orders", {"token": customer.token})
    await orders.connect()
    await orders.close()


async def test_a_market_admin_dashboard_defaults_to_their_market(client: TestClient) -> None:
    shop = await open_shop(client)
    dashboard = LiveClient(server_url(client), "/dashboard", {"token": shop.admin.token})
    await dashboard.connect()
    await dashboard.wait(lambda: bool(dashboard.events("stats")))
    assert dashboard.events("stats")[0]["market_id"] == shop.market_id
    await dashboard.close()
    # Without a market of their own there is nothing to default to.
    lone_admin = await sign_up(client, "market_admin")
    refusal = await LiveClient(server_url(client), "/dashboard", {"token": lone_admin.token}).refused_with()
    assert refusal == {"message": "forbidden"}
