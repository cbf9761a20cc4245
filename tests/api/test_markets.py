"""/markets over HTTP: creation, the role matrix, listing, literal search, verification and deactivation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.keys import store_key
from hub.settings import Settings
from store.codec import new_id
from tests.helpers.api import Account, expect_error, make_market, make_super_admin, sign_up

MARKET_FIELDS = {
    "id", "owner_id", "name", "description", "contact_email", "contact_phone", "address", "coordinates",
    "business_hours", "delivery_options", "payment_methods", "currency", "is_active", "verified", "rating",
    "total_orders", "total_revenue_cents", "created_at", "updated_at",
}  # fmt: skip
ROLES = ["anonymous", "customer", "other_market_admin", "owner", "super_admin"]


async def actor(client: TestClient, settings: Settings, role: str, owner: Account) -> dict[str, str]:
    """The headers of someone in `role` relative to `owner`'s market (a market_admin of another market, ...)."""
    if role == "anonymous":
        return {}
    if role == "owner":
        return owner.headers
    if role == "super_admin":
        return (await make_super_admin(settings, client)).headers
    account = await sign_up(client, "customer" if role == "customer" else "market_admin")
    if role == "other_market_admin":
        await make_market(client, account)
    return account.headers


async def test_create_market(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner, name="Bessarabsky", contact_phone="+380 44 000 0000")
    assert set(market) == MARKET_FIELDS
    assert market["owner_id"] == owner.id
    assert (market["name"], market["description"], market["contact_phone"]) == ("Bessarabsky", "", "+380 44 000 0000")
    assert market["delivery_options"] == ["pickup"]
    assert market["payment_methods"] == ["cash", "card"]
    assert market["currency"] == "UAH"
    assert (market["is_active"], market["verified"], market["rating"]) == (True, False, None)
    assert (market["total_orders"], market["total_revenue_cents"]) == (0, 0)
    assert datetime.fromisoformat(market["created_at"]).tzinfo is not None
    response = await client.get(f"/api/v1/markets/{market['id']}")
    assert response.status == 200
    assert await response.json() == market


async def test_create_market_with_every_field(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    fields = {
        "description": "Fresh food",
        "coordinates": {"lat": 50.45, "lng": 30.52},
        "business_hours": {"mon": "08:00-18:00"},
        "delivery_options": ["pickup", "delivery"],
        "payment_methods": ["card"],
        "currency": "EUR",
    }
    market = await make_market(client, owner, **fields)
    assert {key: market[key] for key in fields} == fields


async def test_one_market_per_owner(client: TestClient, settings: Settings) -> None:
    owner = await sign_up(client, "market_admin")
    await make_market(client, owner)
    response = await client.post(
        "/api/v1/markets", json={"name": "Second", "contact_email": owner.email, "address": "x"}, headers=owner.headers
    )
    await expect_error(response, 409, "MARKET_EXISTS")
    admin = await make_super_admin(settings, client)
    body = {"name": "For them", "contact_email": owner.email, "address": "x", "owner_id": owner.id}
    await expect_error(await client.post("/api/v1/markets", json=body, headers=admin.headers), 409, "MARKET_EXISTS")


async def test_super_admin_may_choose_the_owner(client: TestClient, settings: Settings) -> None:
    admin = await make_super_admin(settings, client)
    owner = await sign_up(client, "market_admin")
    body = {"name": "Delegated", "contact_email": "m@example.com", "address": "x", "owner_id": owner.id.upper()}
    response = await client.post("/api/v1/markets", json=body, headers=admin.headers)
    assert response.status == 201, await response.text()
    assert (await response.json())["owner_id"] == owner.id


async def test_the_chosen_owner_must_be_an_active_market_admin(client: TestClient, settings: Settings) -> None:
    admin = await make_super_admin(settings, client)
    customer = await sign_up(client, "customer")
    for owner_id in (new_id(), customer.id):
        body = {"name": "Delegated", "contact_email": "m@example.com", "address": "x", "owner_id": owner_id}
        response = await client.post("/api/v1/markets", json=body, headers=admin.headers)
        await expect_error(response, 422, "VALIDATION_ERROR")
        assert (await response.json())["error"]["details"][0]["loc"] == ["owner_id"]


async def test_create_and_update_reject_invalid_or_forbidden_fields(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    base = {"name": "M", "contact_email": owner.email, "address": "x"}
    create_cases: list[tuple[dict[str, Any], str]] = [
        ({"verified": True}, "verified"),
        ({"is_active": False}, "is_active"),
        ({"rating": 5}, "rating"),
        ({"total_orders": 9}, "total_orders"),
        ({"id": new_id()}, "id"),
        ({"delivery_options": ["drone"]}, "delivery_options"),
        ({"delivery_options": ["pickup", "pickup"]}, "delivery_options"),
        ({"delivery_options": []}, "delivery_options"),
        ({"payment_methods": ["barter"]}, "payment_methods"),
        ({"currency": "uah"}, "currency"),
        ({"coordinates": {"lat": 91, "lng": 0}}, "coordinates"),
        ({"contact_email": "nope"}, "contact_email"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
    ]
    for fields, loc in create_cases:
        response = await client.post("/api/v1/markets", json={**base, **fields}, headers=owner.headers)
        error = await expect_error(response, 422, "VALIDATION_ERROR")
        assert loc in [item["loc"][0] for item in error["details"]], (fields, error)
    market = await make_market(client, owner)
    update_cases: list[tuple[dict[str, Any], str]] = [
        ({"owner_id": new_id()}, "owner_id"),
        ({"verified": True}, "verified"),
        ({"total_revenue_cents": 1}, "total_revenue_cents"),
        ({"name": None}, "name"),
        ({"contact_email": None}, "contact_email"),
        ({"address": None}, "address"),
        ({"delivery_options": None}, "delivery_options"),
        ({"payment_methods": None}, "payment_methods"),
        ({"currency": None}, "currency"),
        ({"business_hours": None}, "business_hours"),
    ]
    for fields, loc in update_cases:
        response = await client.patch(f"/api/v1/markets/{market['id']}", json=fields, headers=owner.headers)
        error = await expect_error(response, 422, "VALIDATION_ERROR")
        assert [item["loc"] for item in error["details"]] == [[loc]], (fields, error)
    # Documented fields that only a super_admin may set: well-formed, not allowed for the owner.
    response = await client.post("/api/v1/markets", json={**base, "owner_id": owner.id}, headers=owner.headers)
    await expect_error(response, 403, "FORBIDDEN")
    response = await client.patch(f"/api/v1/markets/{market['id']}", json={"is_active": True}, headers=owner.headers)
    await expect_error(response, 403, "FORBIDDEN")
    assert await (await client.get(f"/api/v1/markets/{market['id']}")).json() == market


async def test_update_market(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner, description="Old", contact_phone="+380 44 000 0000")
    changes = {"name": "Renamed", "contact_phone": None, "coordinates": {"lat": 1.5, "lng": 2.5},
               "delivery_options": ["delivery"], "business_hours": {"sun": "closed"}}  # fmt: skip
    response = await client.patch(f"/api/v1/markets/{market['id']}", json=changes, headers=owner.headers)
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert {key: updated[key] for key in changes} == changes
    assert updated["updated_at"] >= market["updated_at"]
    # A null description clears it; an empty body changes nothing.
    response = await client.patch(f"/api/v1/markets/{market['id']}", json={"description": None}, headers=owner.headers)
    assert (await response.json())["description"] == ""
    response = await client.patch(f"/api/v1/markets/{market['id']}", json={}, headers=owner.headers)
    assert response.status == 200
    assert (await response.json())["name"] == "Renamed"


@pytest.mark.parametrize("role", ROLES)
async def test_market_routes_by_role(client: TestClient, settings: Settings, role: str) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    url = f"/api/v1/markets/{market['id']}"
    headers = await actor(client, settings, role, owner)
    expected = {
        #                  anonymous customer other  owner  super_admin
        "patch": dict(zip(ROLES, [401, 403, 403, 200, 200], strict=True)),
        "verify": dict(zip(ROLES, [401, 403, 403, 403, 200], strict=True)),
        "create": dict(zip(ROLES, [401, 403, 409, 409, 201], strict=True)),
        "delete": dict(zip(ROLES, [401, 403, 403, 204, 204], strict=True)),
    }
    codes = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 409: "MARKET_EXISTS"}

    async def check(step: str, response: Any) -> None:
        status = expected[step][role]
        if status in codes:
            await expect_error(response, status, codes[status])
        else:
            assert response.status == status, (step, await response.text())

    await check("patch", await client.patch(url, json={"description": "changed"}, headers=headers))
    await check("verify", await client.post(f"{url}/verify", headers=headers))
    body = {"name": "Another", "contact_email": "x@example.com", "address": "x"}
    await check("create", await client.post("/api/v1/markets", json=body, headers=headers))
    current = await (await client.get(url)).json()
    assert current["description"] == ("changed" if expected["patch"][role] == 200 else "")
    assert current["verified"] is (expected["verify"][role] == 200)

    await check("delete", await client.delete(url, headers=headers))
    deleted = expected["delete"][role] == 204
    public = await client.get(url)
    assert public.status == (404 if deleted else 200)


async def test_verify_market(client: TestClient, settings: Settings) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    admin = await make_super_admin(settings, client)
    response = await client.post(f"/api/v1/markets/{market['id']}/verify", headers=admin.headers)
    assert response.status == 200
    assert (await response.json())["verified"] is True
    verified = await client.get("/api/v1/markets", params={"verified": "true"})
    assert [item["id"] for item in await verified.json()] == [market["id"]]
    assert (await client.get("/api/v1/markets", params={"verified": "false"})).headers["X-Total-Count"] == "0"
    await expect_error(await client.post(f"/api/v1/markets/{new_id()}/verify", headers=admin.headers), 404, "NOT_FOUND")


async def test_deleted_market_is_inactive_and_kept(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner)
    url = f"/api/v1/markets/{market['id']}"
    assert (await client.delete(url, headers=owner.headers)).status == 204
    listed = await client.get("/api/v1/markets")
    assert (await listed.json(), listed.headers["X-Total-Count"]) == ([], "0")
    await expect_error(await client.get(url), 404, "NOT_FOUND")
    # Its manager still sees it, inactive; the document stays for the orders that point at it.
    mine = await client.get(url, headers=owner.headers)
    assert (await mine.json())["is_active"] is False
    stored = await client.app[store_key].db["markets"].find_one({"_id": market["id"]})
    assert stored is not None
    assert not stored["is_active"]  # nx-27017 keeps a $set boolean as 0 (docs/store-backends.md)
    # It still counts as the owner's one market, and deleting again changes nothing.
    assert (await client.delete(url, headers=owner.headers)).status == 204
    body = {"name": "Again", "contact_email": owner.email, "address": "x"}
    await expect_error(await client.post("/api/v1/markets", json=body, headers=owner.headers), 409, "MARKET_EXISTS")


async def test_list_pagination_and_literal_search(client: TestClient, settings: Settings) -> None:
    admin = await make_super_admin(settings, client)
    names = ["Fish (fresh)", "Dots .* here", "Bracket [x", "Back\\slash", "Plain fish", "Caret ^F"]
    created = []
    for name in names:
        owner = await sign_up(client, "market_admin")
        body = {"name": name, "contact_email": "m@example.com", "address": "x", "owner_id": owner.id}
        response = await client.post("/api/v1/markets", json=body, headers=admin.headers)
        assert response.status == 201
        created.append((await response.json())["id"])
    newest_first = created[::-1]

    response = await client.get("/api/v1/markets")
    assert response.headers["X-Total-Count"] == str(len(names))
    assert [item["id"] for item in await response.json()] == newest_first
    pages = [await client.get("/api/v1/markets", params={"skip": skip, "limit": 4}) for skip in (0, 4, 8)]
    assert [len(await page.json()) for page in pages] == [4, 2, 0]
    assert all(page.headers["X-Total-Count"] == str(len(names)) for page in pages)
    assert [item["id"] for page in pages for item in await page.json()] == newest_first

    searches = {
        "(": ["Fish (fresh)"],
        ".*": ["Dots .* here"],
        "[": ["Bracket [x"],
        "\\": ["Back\\slash"],
        "FISH": ["Plain fish", "Fish (fresh)"],
        "^F": ["Caret ^F"],
        "f.*h": [],
        "$where": [],
    }
    for text, expected in searches.items():
        response = await client.get("/api/v1/markets", params={"search": text})
        assert response.status == 200, (text, await response.text())
        assert [item["name"] for item in await response.json()] == expected, text
        assert response.headers["X-Total-Count"] == str(len(expected))


@pytest.mark.parametrize(
    "market_id", ["123", "z" * 24, "a" * 25, "6b07d74a12f2091d73900ee", "{'$ne': 1}", "%00", new_id()]
)
async def test_malformed_or_unknown_ids_are_404(client: TestClient, market_id: str) -> None:
    await expect_error(await client.get(f"/api/v1/markets/{market_id}"), 404, "NOT_FOUND")


async def test_malformed_ids_are_404_for_writes_too(client: TestClient, settings: Settings) -> None:
    admin = await make_super_admin(settings, client)
    for market_id in ("123", "z" * 24, new_id()):
        url = f"/api/v1/markets/{market_id}"
        await expect_error(await client.patch(url, json={"name": "x"}, headers=admin.headers), 404, "NOT_FOUND")
        await expect_error(await client.post(f"{url}/verify", headers=admin.headers), 404, "NOT_FOUND")
        await expect_error(await client.delete(url, headers=admin.headers), 404, "NOT_FOUND")
