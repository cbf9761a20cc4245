"""The hub answers and a person can sign up, sign in and see themselves."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import make_market, make_product, sign_up


async def test_health(client: TestClient) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_sign_up_and_me(client: TestClient) -> None:
    account = await sign_up(client)
    response = await client.get("/api/v1/users/me", headers=account.headers)
    assert response.status == 200
    body = await response.json()
    assert body["email"] == account.email
    assert "password_hash" not in body


async def test_owner_creates_market_and_product(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    response = await client.get("/api/v1/products", params={"market_id": market["id"]})
    assert response.status == 200
    assert response.headers["X-Total-Count"] == "1"
    assert [item["id"] for item in await response.json()] == [product["id"]]
