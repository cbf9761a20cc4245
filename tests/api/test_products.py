"""/products over HTTP: creation, the role matrix, filters, literal search, pagination and deletion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from store.codec import new_id
from tests.api.test_markets import ROLES, actor
from tests.helpers.api import expect_error, make_market, make_product, sign_up

PRODUCT_FIELDS = {
    "id", "market_id", "name", "description", "category", "price_cents", "currency", "unit", "stock",
    "is_available", "created_at", "updated_at",
}  # fmt: skip


async def test_create_product(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner, currency="EUR")
    product = await make_product(client, owner, market["id"], name="Honey")
    assert set(product) == PRODUCT_FIELDS
    assert (product["market_id"], product["currency"], product["name"]) == (market["id"], "EUR", "Honey")
    assert (product["description"], product["category"], product["unit"]) == ("", None, "piece")
    assert (product["price_cents"], product["stock"], product["is_available"]) == (2500, 10, True)
    assert datetime.fromisoformat(product["updated_at"]).tzinfo is not None
    response = await client.get(f"/api/v1/products/{product['id']}")
    assert response.status == 200
    assert await response.json() == product


async def test_create_needs_an_active_known_market(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    body = {"market_id": new_id(), "name": "Pears", "price_cents": 100, "stock": 1}
    await expect_error(await client.post("/api/v1/products", json=body, headers=owner.headers), 404, "NOT_FOUND")
    market = await make_market(client, owner)
    assert (await client.delete(f"/api/v1/markets/{market['id']}", headers=owner.headers)).status == 204
    body["market_id"] = market["id"]
    await expect_error(await client.post("/api/v1/products", json=body, headers=owner.headers), 404, "NOT_FOUND")


async def test_create_and_update_reject_invalid_or_forbidden_fields(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    base = {"market_id": market["id"], "name": "Pears", "price_cents": 100, "stock": 1}
    create_cases: list[tuple[dict[str, Any], str]] = [
        ({"price_cents": 0}, "price_cents"),
        ({"price_cents": -5}, "price_cents"),
        ({"price_cents": 1.5}, "price_cents"),
        ({"stock": -1}, "stock"),
        ({"unit": ""}, "unit"),
        ({"name": " "}, "name"),
        ({"currency": "USD"}, "currency"),
        ({"deleted": True}, "deleted"),
        ({"id": new_id()}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ]
    for fields, loc in create_cases:
        response = await client.post("/api/v1/products", json={**base, **fields}, headers=owner.headers)
        error = await expect_error(response, 422, "VALIDATION_ERROR")
        assert [item["loc"] for item in error["details"]] == [[loc]], (fields, error)
    product = await make_product(client, owner, market["id"], category="fruit")
    update_cases: list[tuple[dict[str, Any], str]] = [
        ({"market_id": new_id()}, "market_id"),  # a product never moves to another market
        ({"currency": "USD"}, "currency"),
        ({"deleted": False}, "deleted"),
        ({"name": None}, "name"),
        ({"price_cents": None}, "price_cents"),
        ({"unit": None}, "unit"),
        ({"stock": None}, "stock"),
        ({"is_available": None}, "is_available"),
        ({"stock": -1}, "stock"),
    ]
    for fields, loc in update_cases:
        response = await client.patch(f"/api/v1/products/{product['id']}", json=fields, headers=owner.headers)
        error = await expect_error(response, 422, "VALIDATION_ERROR")
        assert [item["loc"] for item in error["details"]] == [[loc]], (fields, error)
    assert await (await client.get(f"/api/v1/products/{product['id']}")).json() == product


async def test_update_product(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"], category="fruit", description="Sweet")
    changes = {"name": "Green apples", "price_cents": 3100, "stock": 0, "unit": "kg", "is_available": False,
               "category": None, "description": None}  # fmt: skip
    response = await client.patch(f"/api/v1/products/{product['id']}", json=changes, headers=owner.headers)
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert {key: updated[key] for key in changes} == {**changes, "description": ""}
    assert (updated["market_id"], updated["currency"]) == (market["id"], product["currency"])


@pytest.mark.parametrize("role", ROLES)
async def test_product_routes_by_role(client: TestClient, settings: Settings, role: str) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    url = f"/api/v1/products/{product['id']}"
    headers = await actor(client, settings, role, owner)
    allowed = role in ("owner", "super_admin")
    denied = {"anonymous": (401, "UNAUTHORIZED")}.get(role, (403, "FORBIDDEN"))

    body = {"market_id": market["id"], "name": "Plums", "price_cents": 900, "stock": 3}
    responses = [
        (await client.post("/api/v1/products", json=body, headers=headers), 201),
        (await client.patch(url, json={"stock": 99}, headers=headers), 200),
        (await client.delete(url, headers=headers), 204),
    ]
    for response, success in responses:
        if allowed:
            assert response.status == success, await response.text()
        else:
            await expect_error(response, *denied)
    listed = await client.get("/api/v1/products", params={"market_id": market["id"]})
    names = sorted(item["name"] for item in await listed.json())
    assert names == (["Plums"] if allowed else ["Apples"])
    if not allowed:
        assert (await (await client.get(url)).json())["stock"] == 10


async def test_deleted_product_is_gone(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    url = f"/api/v1/products/{product['id']}"
    assert (await client.delete(url, headers=owner.headers)).status == 204
    await expect_error(await client.get(url), 404, "NOT_FOUND")
    await expect_error(await client.patch(url, json={"stock": 1}, headers=owner.headers), 404, "NOT_FOUND")
    await expect_error(await client.delete(url, headers=owner.headers), 404, "NOT_FOUND")
    listed = await client.get("/api/v1/products", params={"market_id": market["id"]})
    assert (await listed.json(), listed.headers["X-Total-Count"]) == ([], "0")


async def test_filters_search_and_pagination(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    specs: list[dict[str, Any]] = [
        {"name": "Apples (red)", "category": "fruit", "stock": 5},
        {"name": "Pears", "category": "fruit", "stock": 0},
        {"name": "Milk 2.5%", "category": "dairy", "stock": 3, "is_available": False},
        {"name": "Cheese [aged]", "category": "dairy", "stock": 1, "description": "Hard \\ salty"},
        {"name": "Eggs", "category": "dairy", "stock": 12, "description": "Free range .* eggs"},
    ]
    ids = [(await make_product(client, owner, market["id"], **spec))["id"] for spec in specs]
    other_owner = await sign_up(client, "market_admin")
    other_market = await make_market(client, other_owner)
    await make_product(client, other_owner, other_market["id"], name="Pears", category="fruit")

    async def names(**params: Any) -> list[str]:
        response = await client.get("/api/v1/products", params={"market_id": market["id"], **params})
        assert response.status == 200, await response.text()
        items = await response.json()
        assert response.headers["X-Total-Count"] == str(len(items)), params  # every case fits in one page
        return [item["name"] for item in items]

    assert await names() == [spec["name"] for spec in reversed(specs)]
    assert await names(category="fruit") == ["Pears", "Apples (red)"]
    assert await names(in_stock="true") == ["Eggs", "Cheese [aged]", "Apples (red)"]
    assert await names(in_stock="false") == ["Milk 2.5%", "Pears"]
    assert await names(search="(RED)") == ["Apples (red)"]
    assert await names(search="[") == ["Cheese [aged]"]
    assert await names(search="\\") == ["Cheese [aged]"]
    assert await names(search=".*") == ["Eggs"]
    assert await names(search="2.5%") == ["Milk 2.5%"]
    assert await names(search="p.ars") == []
    assert await names(category="dairy", in_stock="true", search="e") == ["Eggs", "Cheese [aged]"]

    everywhere = await client.get("/api/v1/products", params={"search": "pears"})
    assert everywhere.headers["X-Total-Count"] == "2"
    page = await client.get("/api/v1/products", params={"market_id": market["id"], "skip": 1, "limit": 2})
    assert page.headers["X-Total-Count"] == str(len(specs))
    assert [item["id"] for item in await page.json()] == ids[::-1][1:3]
    unknown = await client.get("/api/v1/products", params={"market_id": new_id()})
    assert (await unknown.json(), unknown.headers["X-Total-Count"]) == ([], "0")


@pytest.mark.parametrize("product_id", ["123", "z" * 24, "a" * 25, "{'$gt': ''}", new_id()])
async def test_malformed_or_unknown_ids_are_404(client: TestClient, product_id: str) -> None:
    await expect_error(await client.get(f"/api/v1/products/{product_id}"), 404, "NOT_FOUND")


async def test_malformed_ids_are_404_for_writes_too(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    for product_id in ("123", "z" * 24, new_id()):
        url = f"/api/v1/products/{product_id}"
        await expect_error(await client.patch(url, json={"stock": 1}, headers=owner.headers), 404, "NOT_FOUND")
        await expect_error(await client.delete(url, headers=owner.headers), 404, "NOT_FOUND")


async def test_products_follow_their_market(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    market_url = f"/api/v1/markets/{market['id']}"
    patched = await client.patch(market_url, json={"currency": "EUR"}, headers=owner.headers)
    assert patched.status == 200
    assert (await (await client.get(f"/api/v1/products/{product['id']}")).json())["currency"] == "EUR"
    # A deactivated market's products leave the public catalog.
    assert (await client.delete(market_url, headers=owner.headers)).status == 204
    listed = await client.get("/api/v1/products", params={"market_id": market["id"]})
    assert (await listed.json(), listed.headers["X-Total-Count"]) == ([], "0")
    await expect_error(await client.get(f"/api/v1/products/{product['id']}"), 404, "NOT_FOUND")


async def test_the_manager_still_sees_products_of_a_deactivated_market(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    assert (await client.delete(f"/api/v1/markets/{market['id']}", headers=owner.headers)).status == 204
    seen = await client.get(f"/api/v1/products/{product['id']}", headers=owner.headers)
    assert seen.status == 200
    stranger = await sign_up(client, "market_admin")
    unseen = await client.get(f"/api/v1/products/{product['id']}", headers=stranger.headers)
    await expect_error(unseen, 404, "NOT_FOUND")
