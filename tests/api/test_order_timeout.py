"""Unconfirmed orders are cancelled by the hub exactly once, even with two instances sweeping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.keys import order_sweeper_key
from hub.settings import Settings
from tests.helpers.api import make_market, make_product, place_order, set_order_status, sign_up

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]


async def two_instances(aiohttp_client: ClientMaker, settings: Settings) -> tuple[TestClient, TestClient]:
    """Two hubs on the same database, each with its own sweeper."""
    return await aiohttp_client(create_app(settings)), await aiohttp_client(create_app(settings))


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_two_sweeping_instances_cancel_each_order_once(
    aiohttp_client: ClientMaker, make_settings: Callable[..., Settings]
) -> None:
    # 1.2 s to confirm (slack for a loaded machine); both instances sweep every 20 ms.
    settings = make_settings(order_confirm_timeout_minutes=0.02, order_sweep_interval_seconds=0.02)
    first, second = await two_instances(aiohttp_client, settings)
    owner = await sign_up(first, "market_admin")
    customer = await sign_up(first)
    market = await make_market(first, owner)
    product = await make_product(first, owner, market["id"], stock=50, price_cents=100)
    orders = [
        await (await place_order(first, customer, market["id"], [(product["id"], 1 + n % 3)])).json() for n in range(12)
    ]
    # Confirmed in time: left alone.
    kept = await place_order(second, customer, market["id"], [(product["id"], 5)])
    kept_id = (await kept.json())["id"]
    confirmed = await set_order_status(second, owner, kept_id, "confirmed")
    assert confirmed.status == 200, await confirmed.text()

    async def all_cancelled() -> bool:
        response = await second.get(
            "/api/v1/orders", params={"status": "cancelled", "limit": 100}, headers=owner.headers
        )
        return response.headers["X-Total-Count"] == str(len(orders))

    await wait_until(all_cancelled)
    for order in orders:
        final = await (await first.get(f"/api/v1/orders/{order['id']}", headers=customer.headers)).json()
        history = [(entry["status"], entry["by"], entry["reason"]) for entry in final["status_history"]]
        assert history == [("pending", customer.id, None), ("cancelled", "system", "timeout")]
        assert final["version"] == 2
    stock = (await (await first.get(f"/api/v1/products/{product['id']}")).json())["stock"]
    assert stock == 50 - 5
    market_now = await (await first.get(f"/api/v1/markets/{market['id']}")).json()
    assert (market_now["total_orders"], market_now["total_revenue_cents"]) == (1, 500)
    still = await (await first.get(f"/api/v1/orders/{kept_id}", headers=owner.headers)).json()
    assert still["status"] == "confirmed"


async def test_concurrent_sweeps_split_the_work_without_doubles(
    aiohttp_client: ClientMaker, make_settings: Callable[..., Settings]
) -> None:
    # Background sweepers effectively off (one round at start); the sweeps are driven by the test.
    settings = make_settings(order_confirm_timeout_minutes=0.00001, order_sweep_interval_seconds=3600)
    first, second = await two_instances(aiohttp_client, settings)
    owner = await sign_up(first, "market_admin")
    customer = await sign_up(first)
    market = await make_market(first, owner)
    product = await make_product(first, owner, market["id"], stock=30)
    responses = await asyncio.gather(
        *(place_order(first, customer, market["id"], [(product["id"], 2)]) for _ in range(15))
    )
    assert all(response.status == 201 for response in responses)

    sweepers = [hub.app[order_sweeper_key] for hub in (first, second, first, second)]
    counts = await asyncio.gather(*(sweeper.cancel_unconfirmed() for sweeper in sweepers))

    assert sum(counts) == 15
    stock = (await (await first.get(f"/api/v1/products/{product['id']}")).json())["stock"]
    assert stock == 30
    market_now = await (await first.get(f"/api/v1/markets/{market['id']}")).json()
    assert (market_now["total_orders"], market_now["total_revenue_cents"]) == (0, 0)
    assert await first.app[order_sweeper_key].cancel_unconfirmed() == 0
