"""CORS for REST: only CORS_ORIGINS may read cross-origin; none configured means same-origin only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from hub.app import create_app
from tests.helpers.api import sign_up
from tests.helpers.socket_clients import LiveClient

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
ALLOWED = "http://shop.example"
FOREIGN = "http://evil.example"


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_listed_origin_may_call_the_api(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await aiohttp_client(create_app(make_settings(cors_origins=f"{ALLOWED}, http://admin.example")))
    response = await client.get("/api/v1/markets", headers={"Origin": ALLOWED})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {name.strip().lower() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"x-total-count", "x-request-id", "retry-after"} <= exposed

    response = await client.options("/api/v1/markets", headers=preflight(ALLOWED))
    assert response.status == 200, await response.text()
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    allowed_headers = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed_headers
    assert "POST" in response.headers["Access-Control-Allow-Methods"]

    # Errors carry the header too, so the page can read the error envelope.
    response = await client.get("/api/v1/users/me", headers={"Origin": ALLOWED})
    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_foreign_origin_gets_no_cors_headers(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await aiohttp_client(create_app(make_settings(cors_origins=ALLOWED)))
    response = await client.get("/api/v1/markets", headers={"Origin": FOREIGN})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.options("/api/v1/markets", headers=preflight(FOREIGN, "GET"))
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_no_origins_means_same_origin_only(client: TestClient) -> None:
    response = await client.get("/api/v1/markets", headers={"Origin": ALLOWED})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.options("/api/v1/markets", headers=preflight(ALLOWED, "GET"))
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.status >= 400


async def test_socketio_accepts_the_same_origins(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await aiohttp_client(create_app(make_settings(cors_origins=ALLOWED)))
    account = await sign_up(client)
    url = str(client.make_url("/")).rstrip("/")
    allowed = LiveClient(url, "/orders", {"token": account.token}, headers={"Origin": ALLOWED})
    await allowed.connect()
    await allowed.close()
    foreign = LiveClient(url, "/orders", {"token": account.token}, headers={"Origin": FOREIGN})
    assert await foreign.refused_with() is not None
