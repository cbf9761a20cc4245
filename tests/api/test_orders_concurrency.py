"""Stock under concurrency: never oversold, never partly reserved, one order per Idempotency-Key."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp.test_utils import TestClient

from tests.helpers.api import expect_error, make_market, make_product, place_order, sign_up, stock_of


async def test_thirty_orders_for_ten_in_stock(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"], stock=10, price_cents=300)

    responses = await asyncio.gather(
        *(place_order(client, customer, market["id"], [(product["id"], 1)]) for _ in range(30))
    )

    statuses = sorted(response.status for response in responses)
    assert statuses.count(201) == 10
    assert statuses.count(409) == 20
    for response in responses:
        if response.status == 409:
            error = await expect_error(response, 409, "INSUFFICIENT_STOCK")
            assert error["details"] == [{"product_id": product["id"], "requested": 1, "available": 0}]
    assert await stock_of(client, product["id"]) == 0
    listed = await client.get("/api/v1/orders", params={"limit": 100}, headers=owner.headers)
    assert listed.headers["X-Total-Count"] == "10"
    market_now = await (await client.get(f"/api/v1/markets/{market['id']}")).json()
    assert (market_now["total_orders"], market_now["total_revenue_cents"]) == (10, 3000)


async def test_mixed_orders_never_leave_partial_reservations(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(client, owner)
    stocks = [7, 5, 9]
    products = [(await make_product(client, owner, market["id"], stock=stock))["id"] for stock in stocks]
    # Overlapping multi-line orders in different line orders, so lines fail at every position.
    shapes = [
        [(products[0], 2), (products[1], 1)],
        [(products[1], 2), (products[2], 3)],
        [(products[2], 1), (products[0], 1), (products[1], 1)],
        [(products[0], 3)],
        [(products[1], 1), (products[0], 2), (products[2], 2)],
    ]
    requests = [shapes[index % len(shapes)] for index in range(30)]

    responses = await asyncio.gather(*(place_order(client, customer, market["id"], lines) for lines in requests))

    taken = [0, 0, 0]
    for lines, response in zip(requests, responses, strict=True):
        if response.status == 201:
            for product_id, quantity in lines:
                taken[products.index(product_id)] += quantity
        else:
            await expect_error(response, 409, "INSUFFICIENT_STOCK")
    assert sum(response.status == 201 for response in responses) > 0
    assert sum(response.status == 409 for response in responses) > 0
    # Stock left is exactly what the created orders did not take: nothing partial stays held.
    for index, product_id in enumerate(products):
        assert await stock_of(client, product_id) == stocks[index] - taken[index]
        assert stocks[index] - taken[index] >= 0


async def test_eight_concurrent_requests_with_one_key_make_one_order(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"], stock=10)
    key = f"key-{uuid.uuid4().hex}"

    responses = await asyncio.gather(
        *(place_order(client, customer, market["id"], [(product["id"], 3)], key=key) for _ in range(8))
    )

    assert sorted(response.status for response in responses) == [200] * 7 + [201]
    ids = {(await response.json())["id"] for response in responses}
    assert len(ids) == 1
    replayed = [response.headers.get("Idempotent-Replayed") for response in responses]
    assert replayed.count("true") == 7
    assert await stock_of(client, product["id"]) == 7
    listed = await client.get("/api/v1/orders", headers=customer.headers)
    assert listed.headers["X-Total-Count"] == "1"
