"""Placing, reading, listing and cancelling orders; counters; idempotency; crash repair."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.keys import order_sweeper_key, store_key
from store.orders import Orders as OrderDocuments
from store.stock import StockHolds, TakenLine
from tests.helpers.api import (
    Account,
    expect_error,
    make_market,
    make_product,
    make_super_admin,
    place_order,
    set_order_status,
    sign_up,
    stock_of,
)


async def market_counters(client: TestClient, market_id: str) -> tuple[int, int]:
    market = await (await client.get(f"/api/v1/markets/{market_id}")).json()
    return market["total_orders"], market["total_revenue_cents"]


@pytest.fixture
async def shop(client: TestClient) -> dict[str, Any]:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(
        client, owner, delivery_options=["pickup", "delivery"], payment_methods=["card"], currency="EUR"
    )
    apples = await make_product(client, owner, market["id"], name="Apples", price_cents=250, stock=20)
    pears = await make_product(client, owner, market["id"], name="Pears", price_cents=199, stock=5)
    return {"owner": owner, "customer": customer, "market": market, "apples": apples, "pears": pears}


async def test_place_order_prices_on_the_server(client: TestClient, shop: dict[str, Any]) -> None:
    response = await place_order(
        client,
        shop["customer"],
        shop["market"]["id"],
        [(shop["apples"]["id"], 3), (shop["pears"]["id"], 2)],
        payment_method="card",
        notes="ring twice",
    )
    assert response.status == 201, await response.text()
    order = await response.json()
    assert order["total_cents"] == 3 * 250 + 2 * 199
    assert order["currency"] == "EUR"
    assert order["items"][0] == {
        "product_id": shop["apples"]["id"],
        "name": "Apples",
        "unit_price_cents": 250,
        "quantity": 3,
        "line_total_cents": 750,
    }
    assert (order["status"], order["version"], order["customer_id"]) == ("pending", 1, shop["customer"].id)
    assert order["status_history"][0]["status"] == "pending"
    assert order["status_history"][0]["by"] == shop["customer"].id
    assert await stock_of(client, shop["apples"]["id"]) == 17
    assert await market_counters(client, shop["market"]["id"]) == (1, 1148)


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"items": []}, "items"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1001}, "quantity"),
        ({"notes": "x" * 501}, "notes"),
        ({"delivery_option": "delivery"}, "delivery_address"),
        ({"duplicate": True}, "items"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_bodies_are_422(
    client: TestClient, shop: dict[str, Any], change: dict[str, Any], location: str
) -> None:
    line = {"product_id": shop["apples"]["id"], "quantity": change.pop("quantity", 1)}
    body: dict[str, Any] = {
        "market_id": shop["market"]["id"],
        "items": [line],
        "delivery_option": "pickup",
        "payment_method": "card",
    }
    if change.pop("duplicate", False):
        body["items"] = [line, dict(line)]
    body.update(change)
    response = await client.post("/api/v1/orders", json=body, headers=shop["customer"].headers)
    error = await expect_error(response, 422, "VALIDATION_ERROR")
    assert any(location in str(detail["loc"]) or location in detail["msg"] for detail in error["details"])
    assert await stock_of(client, shop["apples"]["id"]) == 20


async def test_market_and_product_rules(client: TestClient, shop: dict[str, Any]) -> None:
    market_id, customer = shop["market"]["id"], shop["customer"]
    apples = shop["apples"]["id"]
    error = await expect_error(
        await place_order(client, customer, market_id, [(apples, 1)], payment_method="cash"), 422, "VALIDATION_ERROR"
    )
    assert error["details"][0]["loc"] == ["body", "payment_method"]
    other_owner = await sign_up(client, "market_admin")
    other_market = await make_market(client, other_owner)
    foreign = await make_product(client, other_owner, other_market["id"])
    error = await expect_error(
        await place_order(client, customer, market_id, [(foreign["id"], 1)], payment_method="card"),
        422,
        "VALIDATION_ERROR",
    )
    assert error["details"][0]["loc"] == ["body", "items", 0, "product_id"]
    hidden = await make_product(client, shop["owner"], market_id, name="Plums", is_available=False)
    await expect_error(
        await place_order(client, customer, market_id, [(hidden["id"], 1)], payment_method="card"),
        422,
        "VALIDATION_ERROR",
    )
    await expect_error(
        await place_order(client, customer, uuid.uuid4().hex[:24], [(apples, 1)], payment_method="card"),
        404,
        "NOT_FOUND",
    )
    assert (await client.delete(f"/api/v1/markets/{market_id}", headers=shop["owner"].headers)).status == 204
    await expect_error(
        await place_order(client, customer, market_id, [(apples, 1)], payment_method="card"), 404, "NOT_FOUND"
    )
    assert await stock_of(client, apples, shop["owner"].headers) == 20
    bad_id = await place_order(client, customer, market_id, [("nope", 1)], payment_method="card")
    await expect_error(bad_id, 400, "BAD_REQUEST")
    anonymous = Account(id="", email="", role="customer", token="", user={})
    await expect_error(await place_order(client, anonymous, market_id, [(apples, 1)]), 401, "UNAUTHORIZED")


async def test_insufficient_stock_gives_back_earlier_lines(client: TestClient, shop: dict[str, Any]) -> None:
    response = await place_order(
        client,
        shop["customer"],
        shop["market"]["id"],
        [(shop["apples"]["id"], 4), (shop["pears"]["id"], 6)],
        payment_method="card",
    )
    error = await expect_error(response, 409, "INSUFFICIENT_STOCK")
    assert error["details"] == [{"product_id": shop["pears"]["id"], "requested": 6, "available": 5}]
    assert await stock_of(client, shop["apples"]["id"]) == 20
    assert await stock_of(client, shop["pears"]["id"]) == 5


async def test_idempotency_replay_and_mismatch(client: TestClient, shop: dict[str, Any]) -> None:
    customer, market_id = shop["customer"], shop["market"]["id"]
    lines = [(shop["apples"]["id"], 2), (shop["pears"]["id"], 1)]
    first = await place_order(client, customer, market_id, lines, key="k-1", payment_method="card")
    assert first.status == 201
    again = await place_order(client, customer, market_id, list(reversed(lines)), key="k-1", payment_method="card")
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == (await first.json())["id"]
    other = await place_order(
        client, customer, market_id, [(shop["apples"]["id"], 3)], key="k-1", payment_method="card"
    )
    await expect_error(other, 409, "IDEMPOTENCY_MISMATCH")
    # The key is the customer's own: someone else's identical key is a new order.
    stranger = await sign_up(client)
    assert (await place_order(client, stranger, market_id, lines, key="k-1", payment_method="card")).status == 201
    assert await stock_of(client, shop["apples"]["id"]) == 16
    # A failed placement frees its key.
    failed = await place_order(
        client, customer, market_id, [(shop["pears"]["id"], 99)], key="k-2", payment_method="card"
    )
    await expect_error(failed, 409, "INSUFFICIENT_STOCK")
    retry = await place_order(client, customer, market_id, [(shop["pears"]["id"], 1)], key="k-2", payment_method="card")
    assert retry.status == 201
    long_key = await place_order(client, customer, market_id, lines, key="k" * 256, payment_method="card")
    await expect_error(long_key, 422, "VALIDATION_ERROR")


async def test_a_replay_after_the_order_moved_returns_it(client: TestClient, shop: dict[str, Any]) -> None:
    """The order keeps its key through every write (a move replaces the whole document)."""
    customer, market_id = shop["customer"], shop["market"]["id"]
    lines = [(shop["apples"]["id"], 1)]
    first = await (await place_order(client, customer, market_id, lines, key="k-moved", payment_method="card")).json()
    moved = await set_order_status(client, shop["owner"], first["id"], "confirmed")
    assert moved.status == 200, await moved.text()
    again = await place_order(client, customer, market_id, lines, key="k-moved", payment_method="card")
    assert again.status == 200, await again.text()
    assert (await again.json())["id"] == first["id"]
    assert (await again.json())["status"] == "confirmed"
    assert await stock_of(client, shop["apples"]["id"]) == 19


async def test_reading_and_listing_by_role(client: TestClient, settings: Any, shop: dict[str, Any]) -> None:
    customer, owner, market_id = shop["customer"], shop["owner"], shop["market"]["id"]
    other_customer = await sign_up(client)
    other_admin = await sign_up(client, "market_admin")
    other_market = await make_market(client, other_admin)
    other_product = await make_product(client, other_admin, other_market["id"])
    admin = await make_super_admin(settings, client)
    mine = []
    for quantity in (1, 2, 3):
        response = await place_order(
            client, customer, market_id, [(shop["apples"]["id"], quantity)], payment_method="card"
        )
        mine.append(await response.json())
    elsewhere = await (await place_order(client, other_customer, other_market["id"], [(other_product["id"], 1)])).json()

    async def ids(account: Account, **params: Any) -> tuple[list[str], str]:
        response = await client.get("/api/v1/orders", params=params, headers=account.headers)
        assert response.status == 200, await response.text()
        return [order["id"] for order in await response.json()], response.headers["X-Total-Count"]

    newest_first = [order["id"] for order in reversed(mine)]
    assert await ids(customer) == (newest_first, "3")
    assert await ids(owner) == (newest_first, "3")
    assert await ids(other_customer) == ([elsewhere["id"]], "1")
    assert await ids(other_admin) == ([elsewhere["id"]], "1")
    assert (await ids(admin))[1] == "4"
    assert await ids(admin, market_id=market_id, skip=1, limit=1) == ([newest_first[1]], "3")
    assert await ids(other_admin, market_id=market_id) == ([], "0")
    cancelled = await set_order_status(client, customer, mine[0]["id"], "cancelled")
    assert cancelled.status == 200
    assert await ids(owner, status="cancelled") == ([mine[0]["id"]], "1")
    assert await ids(owner, status="pending") == (newest_first[:2], "2")
    await expect_error(
        await client.get("/api/v1/orders", params={"status": "lost"}, headers=owner.headers), 422, "VALIDATION_ERROR"
    )

    order_id = mine[1]["id"]
    for account in (customer, owner, admin):
        response = await client.get(f"/api/v1/orders/{order_id}", headers=account.headers)
        assert response.status == 200
    for account in (other_customer, other_admin):
        await expect_error(await client.get(f"/api/v1/orders/{order_id}", headers=account.headers), 404, "NOT_FOUND")
        await expect_error(await set_order_status(client, account, order_id, "cancelled"), 404, "NOT_FOUND")
    await expect_error(await client.get("/api/v1/orders/not-an-id", headers=customer.headers), 404, "NOT_FOUND")


async def test_stale_expected_version_is_refused(client: TestClient, shop: dict[str, Any]) -> None:
    owner = shop["owner"]
    order = await (
        await place_order(
            client, shop["customer"], shop["market"]["id"], [(shop["apples"]["id"], 1)], payment_method="card"
        )
    ).json()
    confirmed = await set_order_status(client, owner, order["id"], "confirmed", expected_version=1)
    assert confirmed.status == 200
    assert (await confirmed.json())["version"] == 2
    stale = await set_order_status(client, owner, order["id"], "preparing", expected_version=1)
    error = await expect_error(stale, 409, "VERSION_CONFLICT")
    assert error["details"]["current_version"] == 2
    fresh = await set_order_status(client, owner, order["id"], "preparing", expected_version=2, reason="on it")
    body = await fresh.json()
    assert (body["status"], body["version"]) == ("preparing", 3)
    assert [(entry["status"], entry["by"], entry["reason"]) for entry in body["status_history"]] == [
        ("pending", shop["customer"].id, None),
        ("confirmed", owner.id, None),
        ("preparing", owner.id, "on it"),
    ]
    long_reason = await set_order_status(client, owner, order["id"], "ready", reason="x" * 201)
    await expect_error(long_reason, 422, "VALIDATION_ERROR")


async def test_racing_cancels_restock_once(client: TestClient, settings: Any, shop: dict[str, Any]) -> None:
    admin = await make_super_admin(settings, client)
    apples, pears = shop["apples"]["id"], shop["pears"]["id"]
    for _ in range(3):
        order = await (
            await place_order(
                client, shop["customer"], shop["market"]["id"], [(apples, 2), (pears, 1)], payment_method="card"
            )
        ).json()
        actors = [shop["customer"], shop["owner"], admin] * 2
        responses = await asyncio.gather(
            *(set_order_status(client, actor, order["id"], "cancelled") for actor in actors)
        )
        statuses = sorted(response.status for response in responses)
        assert statuses == [200] + [409] * 5
        for response in responses:
            if response.status == 409:
                await expect_error(response, 409, "INVALID_TRANSITION")
        final = await (await client.get(f"/api/v1/orders/{order['id']}", headers=admin.headers)).json()
        assert [entry["status"] for entry in final["status_history"]] == ["pending", "cancelled"]
    assert await stock_of(client, apples) == 20
    assert await stock_of(client, pears) == 5
    assert await market_counters(client, shop["market"]["id"]) == (0, 0)


async def test_counters_match_a_recount(client: TestClient, shop: dict[str, Any]) -> None:
    customer, owner, market_id = shop["customer"], shop["owner"], shop["market"]["id"]
    apples, pears = shop["apples"]["id"], shop["pears"]["id"]
    responses = await asyncio.gather(
        *(
            place_order(client, customer, market_id, [(apples, 1 + index % 3), (pears, 1)], payment_method="card")
            for index in range(8)
        )
    )
    created = [await response.json() for response in responses if response.status == 201]
    assert len(created) == 5  # pears run out
    moves = [("cancelled",), ("confirmed", "cancelled"), ("confirmed", "preparing", "ready", "picked_up")]
    await asyncio.gather(
        *(_walk(client, owner, order["id"], statuses) for order, statuses in zip(created, moves, strict=False))
    )
    listed = await (await client.get("/api/v1/orders", params={"limit": 100}, headers=owner.headers)).json()
    kept = [order for order in listed if order["status"] != "cancelled"]
    assert len(kept) == 3
    assert await market_counters(client, market_id) == (len(kept), sum(order["total_cents"] for order in kept))
    taken_apples = sum(order["items"][0]["quantity"] for order in kept)
    assert await stock_of(client, apples) == 20 - taken_apples
    assert await stock_of(client, pears) == 5 - len(kept)


async def _walk(client: TestClient, actor: Account, order_id: str, statuses: tuple[str, ...]) -> None:
    for status in statuses:
        response = await set_order_status(client, actor, order_id, status)
        assert response.status == 200, await response.text()


async def test_crash_between_reservation_and_order_write_is_repaired(
    client: TestClient, app: web.Application, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, market_id = shop["customer"], shop["market"]["id"]
    apples, pears = shop["apples"]["id"], shop["pears"]["id"]
    lines = [(apples, 4), (pears, 2)]

    async def crash(self: OrderDocuments, order: Any, **kwargs: Any) -> bool:
        raise RuntimeError("injected: the process died before writing the order")

    monkeypatch.setattr(OrderDocuments, "commit_placement", crash)
    response = await place_order(client, customer, market_id, lines, key="crash-1", payment_method="card")
    await expect_error(response, 500, "INTERNAL_ERROR")
    assert (await stock_of(client, apples), await stock_of(client, pears)) == (16, 3)  # held, orderless
    monkeypatch.undo()

    sweeper = app[order_sweeper_key]
    assert await sweeper.repair_placements() == 0  # too young: could still be in flight
    assert await sweeper.repair_placements(older_than=timedelta(0)) == 1
    assert await sweeper.repair_placements(older_than=timedelta(0)) == 0
    assert (await stock_of(client, apples), await stock_of(client, pears)) == (20, 5)
    assert await market_counters(client, market_id) == (0, 0)
    # Its key is free again, and the retry takes the stock once.
    retry = await place_order(client, customer, market_id, lines, key="crash-1", payment_method="card")
    assert retry.status == 201
    assert (await stock_of(client, apples), await stock_of(client, pears)) == (16, 3)


async def test_crash_while_taking_lines_is_repaired(
    client: TestClient, app: web.Application, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    apples, pears = shop["apples"]["id"], shop["pears"]["id"]
    take = StockHolds.take

    async def take_then_die(
        self: StockHolds, product_id: str, order_id: str, quantity: int, *, market_id: str
    ) -> TakenLine | None:
        if product_id == pears:
            raise RuntimeError("injected: connection lost mid-placement")
        return await take(self, product_id, order_id, quantity, market_id=market_id)

    monkeypatch.setattr(StockHolds, "take", take_then_die)
    response = await place_order(
        client, shop["customer"], shop["market"]["id"], [(apples, 5), (pears, 1)], payment_method="card"
    )
    await expect_error(response, 500, "INTERNAL_ERROR")
    monkeypatch.undo()
    assert await stock_of(client, apples) == 15
    assert await app[order_sweeper_key].repair_placements(older_than=timedelta(0)) == 1
    assert (await stock_of(client, apples), await stock_of(client, pears)) == (20, 5)


async def test_crash_after_the_order_write_keeps_the_order(
    client: TestClient, app: web.Application, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, market_id, apples = shop["customer"], shop["market"]["id"], shop["apples"]["id"]
    commit = OrderDocuments.commit_placement

    async def write_then_die(self: OrderDocuments, order: Any, **kwargs: Any) -> bool:
        await commit(self, order, **kwargs)
        raise RuntimeError("injected: the reply was lost after the write")

    monkeypatch.setattr(OrderDocuments, "commit_placement", write_then_die)
    response = await place_order(client, customer, market_id, [(apples, 3)], key="late", payment_method="card")
    await expect_error(response, 500, "INTERNAL_ERROR")
    monkeypatch.undo()
    assert await app[order_sweeper_key].repair_placements(older_than=timedelta(0)) == 1
    assert await stock_of(client, apples) == 17  # the order exists: its stock stays taken
    product = await app[store_key].products.collection.find_one({"_id": apples})
    assert product is not None
    assert not product.get("holds")
    replay = await place_order(client, customer, market_id, [(apples, 3)], key="late", payment_method="card")
    assert replay.status == 200
    assert await stock_of(client, apples) == 17
