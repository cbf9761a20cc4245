"""Socket.IO `/catalog`: storefronts' live stock. Public, a snapshot on connect, then the changed
products coalesced per market, on every instance (Redis), refused for a missing or inactive market,
and limited per client IP."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.keys import catalog_feed_key
from hub.settings import Settings
from tests.helpers.api import make_market, make_product, place_order, server_url, set_order_status, sign_up
from tests.helpers.socket_clients import LiveClient, open_shop

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def catalogs(client: LiveClient) -> list[dict[str, Any]]:
    return [data for data in client.events("catalog")]


def level(message: dict[str, Any], product_id: str) -> dict[str, Any] | None:
    return next((item for item in message["products"] if item["product_id"] == product_id), None)


def latest(client: LiveClient, product_id: str) -> dict[str, Any] | None:
    for message in reversed(catalogs(client)):
        found = level(message, product_id)
        if found is not None:
            return found
    return None


async def test_snapshot_then_changes_from_orders_edits_and_removals(client: TestClient) -> None:
    url = server_url(client)
    shop = await open_shop(client, stock=5)
    second = await make_product(client, shop.admin, shop.market_id, name="Pears", price_cents=700, stock=2)
    other = await open_shop(client, customers=0)
    buyer = shop.customers[0]
    watcher = LiveClient(url, "/catalog", {"market_id": shop.market_id})  # no token: public
    bystander = LiveClient(url, "/catalog", {"market_id": other.market_id, "token": buyer.token})
    await asyncio.gather(watcher.connect(), bystander.connect())

    await watcher.wait(lambda: len(catalogs(watcher)) == 1)
    snapshot = catalogs(watcher)[0]
    assert snapshot["market_id"] == shop.market_id
    assert isinstance(snapshot["at"], str)
    assert "seq" not in snapshot and "stream" not in snapshot
    assert sorted(snapshot["products"], key=lambda item: item["price_cents"]) == [
        {"product_id": second["id"], "stock": 2, "is_available": True, "price_cents": 700},
        {"product_id": shop.product["id"], "stock": 5, "is_available": True, "price_cents": 1000},
    ]

    order = await shop.place_order(buyer, quantity=3)
    await watcher.wait(lambda: (latest(watcher, shop.product["id"]) or {}).get("stock") == 2)
    assert len(catalogs(watcher)[-1]["products"]) == 1  # only what changed

    response = await set_order_status(client, buyer, order["id"], "cancelled")
    assert response.status == 200, await response.text()
    await watcher.wait(lambda: (latest(watcher, shop.product["id"]) or {}).get("stock") == 5)

    response = await client.patch(f"/api/v1/products/{second['id']}", json={"price_cents": 650, "stock": 9},
                                  headers=shop.admin.headers)  # fmt: skip
    assert response.status == 200, await response.text()
    await watcher.wait(lambda: (latest(watcher, second["id"]) or {}).get("price_cents") == 650)
    assert latest(watcher, second["id"]) == {"product_id": second["id"], "stock": 9, "is_available": True,
                                             "price_cents": 650}  # fmt: skip

    response = await client.delete(f"/api/v1/products/{second['id']}", headers=shop.admin.headers)
    assert response.status == 204
    await watcher.wait(lambda: (latest(watcher, second["id"]) or {}).get("is_available") is False)
    assert (latest(watcher, second["id"]) or {})["stock"] == 0

    # A reconnect gets a full snapshot again (the removed product is gone from it).
    again = LiveClient(url, "/catalog", {"market_id": shop.market_id})
    await again.connect()
    await again.wait(lambda: len(catalogs(again)) == 1)
    assert [item["product_id"] for item in catalogs(again)[0]["products"]] == [shop.product["id"]]

    # The market closes: its open storefronts see every product become unavailable.
    response = await client.delete(f"/api/v1/markets/{shop.market_id}", headers=shop.admin.headers)
    assert response.status == 204
    await again.wait(lambda: (latest(again, shop.product["id"]) or {}).get("is_available") is False)

    # The other market's storefront heard nothing of this market; a barrier proves it is up to date.
    await make_product(other.http, other.admin, other.market_id, name="Barrier")
    await bystander.wait(lambda: len(catalogs(bystander)) == 2)
    assert all(message["market_id"] == other.market_id for message in catalogs(bystander))
    for live in (watcher, bystander, again):
        await live.close()


async def test_changes_are_coalesced_to_at_most_four_a_second(client: TestClient, app: web.Application) -> None:
    url = server_url(client)
    shop = await open_shop(client, customers=1, stock=1000)
    watcher = LiveClient(url, "/catalog", {"market_id": shop.market_id})
    await watcher.connect()
    await watcher.wait(lambda: len(catalogs(watcher)) == 1)
    feed = app[catalog_feed_key]
    pushes_before = feed.pushes

    started = time.monotonic()
    orders = 24
    await asyncio.gather(*(shop.place_order(shop.customers[0]) for _ in range(orders)))
    await watcher.wait(lambda: (latest(watcher, shop.product["id"]) or {}).get("stock") == 1000 - orders)
    elapsed = time.monotonic() - started
    pushes = feed.pushes - pushes_before
    changes = catalogs(watcher)[1:]
    assert len(changes) == pushes
    # 24 orders, and never more than one push per 0.25 s window (plus the first, sent at once).
    assert pushes <= int(elapsed / 0.25) + 1, (pushes, elapsed)
    assert pushes < orders
    arrivals = [at for name, _, at in watcher.received if name == "catalog"][1:]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap >= 0.2 for gap in gaps), gaps  # 0.25 s apart, give or take delivery jitter
    await watcher.close()


async def test_refused_without_an_active_market_or_with_a_bad_token(client: TestClient) -> None:
    url = server_url(client)
    shop = await open_shop(client, customers=0)
    gone = await open_shop(client, customers=0)
    response = await client.delete(f"/api/v1/markets/{gone.market_id}", headers=gone.admin.headers)
    assert response.status == 204
    cases: list[tuple[dict[str, Any] | None, str]] = [
        (None, "forbidden"),
        ({}, "forbidden"),
        ({"market_id": "not-an-id"}, "forbidden"),
        ({"market_id": "0" * 24}, "forbidden"),
        ({"market_id": gone.market_id}, "forbidden"),
        ({"market_id": shop.market_id, "token": "forged"}, "unauthorized"),
    ]
    for auth, message in cases:
        refusal = await LiveClient(url, "/catalog", auth).refused_with()
        assert refusal == {"message": message}, (auth, refusal)


@pytest.fixture
async def limited_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], make_settings: Callable[..., Settings]
) -> TestClient:
    # Three requests a minute per IP: the setup (register, sign-in, market) runs on a roomier hub.
    return await aiohttp_client(create_app(make_settings(rate_limit_per_minute=3)))


async def test_public_connections_are_limited_per_client_ip(
    client: TestClient, limited_client: TestClient, app: web.Application
) -> None:
    shop = await open_shop(client, customers=0)
    url = server_url(limited_client)
    # Opening the Engine.IO session counts once, the /catalog connection once more.
    first = LiveClient(url, "/catalog", {"market_id": shop.market_id})
    await first.connect()  # 1 + 1
    await first.wait(lambda: len(catalogs(first)) == 1)
    refusal = await LiveClient(url, "/catalog", {"market_id": shop.market_id}).refused_with()  # 3 + 4
    assert refusal == {"message": "rate_limited"}, refusal
    await first.close()


@pytest.fixture
async def pair(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Two hubs in this process on one database and one Redis channel of their own."""
    channel = f"test-{uuid.uuid4().hex[:12]}"
    clients = []
    for _ in range(2):
        hub = TestClient(TestServer(create_app(make_settings(redis_url=SHARED_REDIS, redis_channel=channel)),
                                    host="127.0.0.1"))  # fmt: skip
        await hub.start_server()
        clients.append(hub)
    yield clients[0], clients[1]
    for hub in clients:
        await hub.close()


async def test_a_change_on_one_instance_reaches_storefronts_on_the_other(pair: tuple[TestClient, TestClient]) -> None:
    a, b = pair
    admin = await sign_up(a, "market_admin")
    market = await make_market(a, admin)
    product = await make_product(a, admin, market["id"], stock=4)
    buyer = await sign_up(a, "customer")
    on_b = LiveClient(server_url(b), "/catalog", {"market_id": market["id"]})
    on_a = LiveClient(server_url(a), "/catalog", {"market_id": market["id"]})
    await asyncio.gather(on_a.connect(), on_b.connect())
    await asyncio.gather(*(live.wait(lambda live=live: len(catalogs(live)) == 1) for live in (on_a, on_b)))

    response = await place_order(a, buyer, market["id"], [(product["id"], 4)])  # placed on A
    assert response.status == 201, await response.text()
    for live in (on_a, on_b):
        await live.wait(lambda live=live: (latest(live, product["id"]) or {}).get("stock") == 0)  # type: ignore[misc]
    response = await b.patch(f"/api/v1/products/{product['id']}", json={"stock": 7}, headers=admin.headers)  # on B
    assert response.status == 200, await response.text()
    for live in (on_a, on_b):
        await live.wait(lambda live=live: (latest(live, product["id"]) or {}).get("stock") == 7)  # type: ignore[misc]
    # Each change was pushed once, by the instance where it happened: no duplicates.
    assert [len(catalogs(live)) for live in (on_a, on_b)] == [3, 3]
    for live in (on_a, on_b):
        await live.close()
