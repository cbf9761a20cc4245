"""Missed events: replay on reconnect (`auth.since`), gap fill (`replay`), and `resync` when the
history no longer holds them. One hub, real server, orders placed over REST."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.keys import store_key
from hub.settings import Settings
from tests.helpers.api import server_url
from tests.helpers.socket_clients import LiveClient, barrier, dashboard_auth, open_shop

LIMITS = {"rate_limit_per_minute": 100_000, "rate_limit_per_hour": 1_000_000}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**LIMITS)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


async def test_reconnect_with_since_gets_exactly_the_missed_events_first(client: TestClient) -> None:
    url = server_url(client)
    shop = await open_shop(client)
    customer = shop.customers[0]
    market_stream, user_stream = f"market:{shop.market_id}", f"user:{customer.id}"

    dashboard = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    feed = LiveClient(url, "/orders", {"token": customer.token})
    await asyncio.gather(dashboard.connect(), feed.connect())
    await shop.place_order(customer)
    await dashboard.wait(lambda: dashboard.seqs() == [1])
    await feed.wait(lambda: feed.seqs() == [1])
    await asyncio.gather(dashboard.close(), feed.close())

    missed = [await shop.place_order(customer) for _ in range(3)]

    since = {market_stream: 1, user_stream: 1}
    dashboard = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id, since=since))
    feed = LiveClient(url, "/orders", {"token": customer.token, "since": since})
    await asyncio.gather(dashboard.connect(), feed.connect())
    await dashboard.wait(lambda: len(dashboard.events()) >= 3 and bool(dashboard.events("stats")))
    await feed.wait(lambda: len(feed.events()) >= 3)
    await barrier(shop, customer, dashboard, feed)  # anything extra (a duplicate) would have arrived before it

    for live, stream in ((dashboard, market_stream), (feed, user_stream)):
        assert live.seqs() == [2, 3, 4]
        assert {data["stream"] for data in live.events()} == {stream}
        assert live.order_ids() == [order["id"] for order in missed]
    # The replay comes before anything else the connection is sent (the first stats included).
    names = [name for name, _, _ in dashboard.received]
    assert names[:3] == ["order:created"] * 3 and names[3] == "stats"
    await asyncio.gather(dashboard.close(), feed.close())


async def test_reconnect_while_orders_keep_coming_has_no_gap_and_no_duplicate(client: TestClient) -> None:
    url = server_url(client)
    shop = await open_shop(client)
    customer = shop.customers[0]
    stream = f"market:{shop.market_id}"
    for _ in range(2):
        await shop.place_order(customer)

    async def keep_ordering() -> None:
        for _ in range(12):
            await shop.place_order(customer)

    traffic = asyncio.create_task(keep_ordering())
    await asyncio.sleep(0.1)
    dashboard = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id, since={stream: 1}))
    await dashboard.connect()
    await traffic
    await dashboard.wait(lambda: len(dashboard.seqs()) >= 13)
    await barrier(shop, customer, dashboard)
    assert dashboard.seqs() == list(range(2, 15))
    await dashboard.close()


async def test_replay_fills_a_gap_oldest_first(client: TestClient) -> None:
    url = server_url(client)
    shop = await open_shop(client)
    customer = shop.customers[0]
    stream = f"market:{shop.market_id}"
    orders = [await shop.place_order(customer) for _ in range(3)]
    await shop.move(orders[0]["id"], "confirmed")

    dashboard = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    await dashboard.connect()
    replayed = await dashboard.call("replay", {"stream": stream, "since": 1})
    assert [(event["event"], event["seq"]) for event in replayed] == [
        ("order:created", 2), ("order:created", 3), ("order:updated", 4),
    ]  # fmt: skip
    assert replayed[2]["previous_status"] == "pending" and replayed[2]["order"]["status"] == "confirmed"
    assert all(event["stream"] == stream for event in replayed)
    assert await dashboard.call("replay", {"stream": stream, "since": 4}) == []
    assert await dashboard.call("replay", {"stream": stream}) == {"error": {"code": "VALIDATION_ERROR"}}
    await dashboard.close()


async def test_since_older_than_the_history_gets_resync(client: TestClient, app: web.Application) -> None:
    url = server_url(client)
    shop = await open_shop(client)
    customer = shop.customers[0]
    stream = f"market:{shop.market_id}"
    for _ in range(3):
        await shop.place_order(customer)
    # What expiry (24 h) or trimming (past 1,000 events) does, done directly:
    await app[store_key].db["event_history"].delete_many({"stream": stream, "seq": {"$lte": 2}})

    dashboard = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id, since={stream: 0}))
    await dashboard.connect()
    await dashboard.wait(lambda: bool(dashboard.events("resync")))
    assert dashboard.events("resync") == [{"stream": stream, "seq": 3}]
    assert dashboard.events() == []

    # The same through `replay`: resync pushed, empty ack; a range the history still has is served.
    assert await dashboard.call("replay", {"stream": stream, "since": 1}) == []
    await dashboard.wait(lambda: len(dashboard.events("resync")) == 2)
    assert [event["seq"] for event in await dashboard.call("replay", {"stream": stream, "since": 2})] == [3]

    # After a resync, live events continue from the current seq.
    await shop.place_order(customer)
    await dashboard.wait(lambda: dashboard.seqs() == [4])
    await dashboard.close()
