"""User administration by a super_admin (DESIGN.md, Users): list with filters and paging, read, and
PATCH is_active / role, which take effect on the user's very next request."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.helpers.api import PASSWORD, expect_error, make_market, make_super_admin, sign_up, unique_email


async def test_listing_reading_and_who_may(client: TestClient, settings: Settings) -> None:
    root = await make_super_admin(settings, client)
    tag = unique_email("findme").split("@")[0]
    customers = [await sign_up(client, name=f"{tag} buyer {n}") for n in range(3)]
    seller = await sign_up(client, "market_admin", name=f"{tag} seller")

    response = await client.get("/api/v1/users", params={"search": tag, "limit": "2"}, headers=root.headers)
    assert response.status == 200, await response.text()
    assert response.headers["X-Total-Count"] == "4"
    first_page = [user["id"] for user in await response.json()]
    response = await client.get("/api/v1/users", params={"search": tag, "skip": "2", "limit": "2"},
                                headers=root.headers)  # fmt: skip
    second_page = [user["id"] for user in await response.json()]
    # Newest first, no overlap, nothing missing.
    assert first_page + second_page == [seller.id] + [c.id for c in reversed(customers)]
    assert all("password_hash" not in user for user in await response.json())

    response = await client.get("/api/v1/users", params={"search": tag, "role": "market_admin"}, headers=root.headers)
    assert [user["id"] for user in await response.json()] == [seller.id]
    # The search is literal text, never a pattern.
    response = await client.get("/api/v1/users", params={"search": ".*"}, headers=root.headers)
    assert response.headers["X-Total-Count"] == "0"
    response = await client.get("/api/v1/users", params={"role": "wizard"}, headers=root.headers)
    await expect_error(response, 422, "VALIDATION_ERROR")

    response = await client.get(f"/api/v1/users/{seller.id}", headers=root.headers)
    assert (response.status, (await response.json())["email"]) == (200, seller.email)
    await expect_error(await client.get(f"/api/v1/users/{'0' * 24}", headers=root.headers), 404, "NOT_FOUND")
    await expect_error(await client.get("/api/v1/users/not-an-id", headers=root.headers), 404, "NOT_FOUND")

    for outsider in (customers[0], seller):
        for request in (client.get("/api/v1/users", headers=outsider.headers),
                        client.get(f"/api/v1/users/{customers[1].id}", headers=outsider.headers),
                        client.patch(f"/api/v1/users/{customers[1].id}", json={"is_active": False},
                                     headers=outsider.headers)):  # fmt: skip
            await expect_error(await request, 403, "FORBIDDEN")
    await expect_error(await client.get("/api/v1/users"), 401, "UNAUTHORIZED")
    # /users/me is still the caller, not an id.
    response = await client.get("/api/v1/users/me", headers=seller.headers)
    assert (await response.json())["id"] == seller.id


async def test_deactivation_and_role_changes_take_effect_at_once(client: TestClient, settings: Settings) -> None:
    root = await make_super_admin(settings, client)
    customer = await sign_up(client)
    seller = await sign_up(client, "market_admin")
    market = await make_market(client, seller)

    response = await client.patch(f"/api/v1/users/{customer.id}", json={"is_active": False}, headers=root.headers)
    assert (response.status, (await response.json())["is_active"]) == (200, False)
    await expect_error(await client.get("/api/v1/users/me", headers=customer.headers), 401, "UNAUTHORIZED")
    login = await client.post("/api/v1/users/login", json={"email": customer.email, "password": PASSWORD})
    await expect_error(login, 401, "UNAUTHORIZED")
    response = await client.get("/api/v1/users", params={"is_active": "false"}, headers=root.headers)
    assert customer.id in [user["id"] for user in await response.json()]
    response = await client.patch(f"/api/v1/users/{customer.id}", json={"is_active": True}, headers=root.headers)
    assert response.status == 200
    assert (await client.get("/api/v1/users/me", headers=customer.headers)).status == 200

    # A demoted market_admin keeps the market (and its orders) but no longer manages it.
    response = await client.patch(f"/api/v1/users/{seller.id}", json={"role": "customer"}, headers=root.headers)
    assert (response.status, (await response.json())["role"]) == (200, "customer")
    response = await client.patch(f"/api/v1/markets/{market['id']}", json={"name": "Mine"}, headers=seller.headers)
    await expect_error(response, 403, "FORBIDDEN")
    response = await client.patch(f"/api/v1/users/{seller.id}", json={"role": "market_admin"}, headers=root.headers)
    assert response.status == 200
    response = await client.patch(f"/api/v1/markets/{market['id']}", json={"name": "Mine"}, headers=seller.headers)
    assert response.status == 200, await response.text()


async def test_what_cannot_be_changed(client: TestClient, settings: Settings) -> None:
    root = await make_super_admin(settings, client)
    other_root = await make_super_admin(settings, client)
    customer = await sign_up(client)
    for target in (root, other_root):
        for change in ({"is_active": False}, {"role": "customer"}):
            response = await client.patch(f"/api/v1/users/{target.id}", json=change, headers=root.headers)
            await expect_error(response, 403, "FORBIDDEN")
    for body in ({"role": "super_admin"}, {"email": "x@example.com"}, {"is_active": None}, {"role": None},
                 {"is_active": "false"}):  # fmt: skip
        response = await client.patch(f"/api/v1/users/{customer.id}", json=body, headers=root.headers)
        await expect_error(response, 422, "VALIDATION_ERROR")
    response = await client.patch(f"/api/v1/users/{'0' * 24}", json={"is_active": False}, headers=root.headers)
    await expect_error(response, 404, "NOT_FOUND")
