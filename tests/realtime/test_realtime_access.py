"""Who may connect to which namespace, and what each connection receives (one hub, real server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from tests.helpers.api import TEST_SECRET, make_super_admin, server_url, sign_up
from tests.helpers.socket_clients import LiveClient, barrier, dashboard_auth, open_shop

LIMITS = {"rate_limit_per_minute": 100_000, "rate_limit_per_hour": 1_000_000}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(cors_origins="http://shop.example", **LIMITS)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


async def test_refused_connections(client: TestClient, settings: Settings) -> None:
    url = server_url(client)
    shop = await open_shop(client)
    other_admin = await sign_up(client, "market_admin")
    root = await make_super_admin(settings, client)
    customer = shop.customers[0]
    expired = jwt.encode({"sub": customer.id, "role": "customer", "exp": 1}, TEST_SECRET, algorithm="HS256")

    cases: list[tuple[str, dict[str, Any] | None, str, dict[str, str] | None]] = [
        ("/dashboard", None, "unauthorized", None),
        ("/dashboard", {"market_id": shop.market_id}, "unauthorized", None),
        ("/orders", {"token": "not-a-token"}, "unauthorized", None),
        ("/orders", {"token": expired}, "unauthorized", None),
        ("/dashboard", dashboard_auth(customer, shop.market_id), "forbidden", None),
        ("/dashboard", dashboard_auth(root, None), "forbidden", None),
        ("/dashboard", dashboard_auth(other_admin, shop.market_id), "forbidden", None),
        ("/dashboard", dashboard_auth(shop.admin, "0" * 24), "forbidden", None),
    ]
    for namespace, auth, message, headers in cases:
        refusal = await LiveClient(url, namespace, auth, headers=headers).refused_with()
        assert refusal == {"message": message}, (namespace, auth, refusal)

    # A disallowed Origin is refused before any namespace (Engine.IO answers 400).
    for transports in (("websocket",), ("polling",)):
        evil = LiveClient(url, "/orders", {"token": customer.token}, headers={"Origin": "http://evil.example"},
                          transports=transports)  # fmt: skip
        assert await evil.refused_with() is not None
    for origin in ("http://shop.example", url):  # CORS_ORIGINS, and the hub's own pages
        allowed = LiveClient(url, "/orders", {"token": customer.token}, headers={"Origin": origin})
        await allowed.connect()
        await allowed.close()

    # The rightful ones get in: the owner, and a super_admin naming the market (starting on long-polling
    # and upgrading, as browsers do: the upgrade request and the poll it ends are in flight together).
    for account, transports in ((shop.admin, ("websocket",)), (root, ("polling", "websocket"))):
        dashboard = LiveClient(url, "/dashboard", dashboard_auth(account, shop.market_id), transports=transports)
        await dashboard.connect()
        assert dashboard.sio.transport() == "websocket"
        await dashboard.wait(lambda d=dashboard: bool(d.events("stats")))  # type: ignore[misc]
        assert dashboard.events("stats")[0]["market_id"] == shop.market_id
        await dashboard.close()


async def test_each_connection_gets_only_its_streams(client: TestClient) -> None:
    url = server_url(client)
    shop = await open_shop(client, customers=2)
    other_shop = await open_shop(client, customers=0)
    buyer, bystander = shop.customers

    dashboard = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    other_dashboard = LiveClient(url, "/dashboard", dashboard_auth(other_shop.admin, other_shop.market_id))
    buyer_feed = LiveClient(url, "/orders", {"token": buyer.token})
    bystander_feed = LiveClient(url, "/orders", {"token": bystander.token}, transports=("polling",))
    clients = (dashboard, other_dashboard, buyer_feed, bystander_feed)
    await asyncio.gather(*(c.connect() for c in clients))

    order = await shop.place_order(buyer)
    await shop.move(order["id"], "confirmed")
    await dashboard.wait(lambda: len(dashboard.events()) == 2)
    await buyer_feed.wait(lambda: len(buyer_feed.events()) == 2)

    created, updated = dashboard.events()
    assert created["stream"] == f"market:{shop.market_id}" and created["seq"] == 1
    assert created["order"]["id"] == order["id"] and created["order"]["status"] == "pending"
    assert updated["seq"] == 2 and updated["previous_status"] == "pending"
    assert updated["order"]["status"] == "confirmed"
    assert [e["stream"] for e in buyer_feed.events()] == [f"user:{buyer.id}"] * 2
    assert buyer_feed.seqs() == [1, 2]

    # track: own order yes; someone else's order, or nonsense, is NOT_FOUND.
    tracked = await buyer_feed.call("track", {"order_id": order["id"]})
    assert tracked["id"] == order["id"] and tracked["status"] == "confirmed"
    assert await bystander_feed.call("track", {"order_id": order["id"]}) == {"error": {"code": "NOT_FOUND"}}
    assert await bystander_feed.call("track", {"order_id": "nope"}) == {"error": {"code": "NOT_FOUND"}}

    # replay only for streams the socket may read
    assert await bystander_feed.call("replay", {"stream": f"user:{buyer.id}", "since": 0}) == {
        "error": {"code": "FORBIDDEN"}
    }
    replayed = await buyer_feed.call("replay", {"stream": f"user:{buyer.id}", "since": 0})
    assert [(e["event"], e["seq"]) for e in replayed] == [("order:created", 1), ("order:updated", 2)]

    stats = await dashboard.call("stats:get")
    assert stats["market_id"] == shop.market_id and stats["orders_total"] == 1

    # Whatever reached the others, it was nothing of this order: their own marker order comes after it.
    await barrier(other_shop, bystander, other_dashboard, bystander_feed)
    assert other_dashboard.events() == [] and bystander_feed.events() == []
    assert all(data["market_id"] == other_shop.market_id for data in other_dashboard.events("stats"))
    await asyncio.gather(*(c.close() for c in clients))


async def test_oversized_message_and_event_flood_disconnect(client: TestClient) -> None:
    url = server_url(client)
    customer = await sign_up(client)
    big = LiveClient(url, "/orders", {"token": customer.token})
    await big.connect()
    # The ack never comes: the server hung up on the frame (over 64 KiB).
    with pytest.raises((socketio.exceptions.TimeoutError, socketio.exceptions.SocketIOError)):
        await big.call("track", {"order_id": "x" * (65 * 1024)}, timeout=3)
    await asyncio.wait_for(big.disconnected.wait(), 5)
    await big.close()

    flood = LiveClient(url, "/orders", {"token": customer.token})
    await flood.connect()
    for _ in range(200):
        await flood.sio.emit("track", {"order_id": "0" * 24}, namespace="/orders")
    await asyncio.wait_for(flood.disconnected.wait(), 5)
    await flood.close()

    # Normal use stays fine.
    calm = LiveClient(url, "/orders", {"token": customer.token})
    await calm.connect()
    assert await calm.call("track", {"order_id": "0" * 24}) == {"error": {"code": "NOT_FOUND"}}
    await calm.close()
