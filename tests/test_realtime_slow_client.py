"""A client that stops reading is cut off at its outgoing queue bound, and meanwhile does not slow
delivery to the others (one hub process, orders over REST)."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.processes import HubFleet
from tests.socket_clients import LiveClient, Shop, dashboard_auth, open_shop

QUEUE_BOUND = 64 * 1024
LIMITS = {"rate_limit_per_minute": "100000", "rate_limit_per_hour": "1000000"}

pytestmark = pytest.mark.slow


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def open_stalled_dashboard(http: aiohttp.ClientSession, url: str, auth: dict[str, Any]) -> str:
    """An Engine.IO long-polling session on /dashboard that, once connected, never polls again."""
    endpoint = f"{url}/socket.io/?EIO=4&transport=polling"
    async with http.get(endpoint) as response:
        opened = await response.text()
    sid = orjson.loads(opened[1:])["sid"]
    session = f"{endpoint}&sid={sid}"
    async with http.post(session, data="40/dashboard," + orjson.dumps(auth).decode()) as response:
        assert response.status == 200
    async with http.get(session) as response:
        assert '40/dashboard,{"sid"' in await response.text()
    return session


async def place_and_time(shop: Shop, dashboard: LiveClient, count: int) -> list[float]:
    """Per order: seconds from the 201 to the order:created reaching the dashboard."""
    notes = "n" * 480  # about 1 KB per event
    customer = shop.customers[0]
    done: dict[str, float] = {}
    for _ in range(count):
        body = {"market_id": shop.market_id, "items": [{"product_id": shop.product["id"], "quantity": 1}],
                "delivery_option": "pickup", "payment_method": "cash", "notes": notes}  # fmt: skip
        response = await shop.http.post("/api/v1/orders", json=body, headers=customer.headers)
        assert response.status == 201, await response.text()
        done[(await response.json())["id"]] = time.monotonic()
    await dashboard.wait(lambda: set(done) <= set(dashboard.order_ids()), timeout=20)
    arrived = {data["order"]["id"]: at for name, data, at in dashboard.received if name == "order:created"}
    return [max(0.0, arrived[order_id] - stamp) for order_id, stamp in done.items()]


async def test_a_stalled_client_is_cut_off_and_does_not_slow_the_others(
    hubs: HubFleet,
    db_name: str,
    http: aiohttp.ClientSession,
) -> None:
    hub = hubs.start(db_name=db_name, socket_max_queue_bytes=str(QUEUE_BOUND), **LIMITS)
    async with aiohttp.ClientSession(base_url=hub.url) as api:
        shop = await open_shop(api)
        dashboard = LiveClient(hub.url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
        await dashboard.connect()

        usual = await place_and_time(shop, dashboard, 10)
        stalled = await open_stalled_dashboard(http, hub.url, dashboard_auth(shop.admin, shop.market_id))
        meanwhile = await place_and_time(shop, dashboard, 100)  # ~100 KB for the stalled queue

        # The stalled session is gone (its queue passed 64 KiB), the normal one is not.
        async with http.get(stalled) as response:
            assert response.status == 400
        async with api.get("/metrics") as response:
            assert 'hub_slow_client_disconnects_total{namespace="/dashboard"} 1.0' in await response.text()
        assert dashboard.sio.connected

        # Delivery to the normal client kept its pace.
        assert statistics.median(meanwhile) <= 3 * statistics.median(usual) + 0.05, (usual, meanwhile)
        assert max(meanwhile) < 1.0, meanwhile
        await dashboard.close()
