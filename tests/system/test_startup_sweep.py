"""Start-up order: the order sweeper's first round (run as the hub starts) publishes what it does at once.
It used to start before the event publisher was attached, so a timeout cancel made at start-up stayed
unpublished until the next round (hub/app.py now builds the order services with their publisher and
starts the sweeper last)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from tests.helpers.socket_clients import LiveClient, open_shop

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]


async def test_a_timeout_cancel_made_at_start_up_is_published_at_once(
    aiohttp_client: ClientMaker, make_settings: Callable[..., Settings]
) -> None:
    before = await aiohttp_client(create_app(make_settings()))
    shop = await open_shop(before)
    order = await shop.place_order(shop.customers[0])
    await before.close()

    # The order is overdue for this hub; its sweeper runs one round at start, the next an hour later.
    settings = make_settings(order_confirm_timeout_minutes=0.00001, order_sweep_interval_seconds=3600)
    after = await aiohttp_client(create_app(settings))
    stream = f"market:{shop.market_id}"
    dashboard = LiveClient(str(after.make_url("")).rstrip("/"), "/dashboard",
                           {"token": shop.admin.token, "market_id": shop.market_id, "since": {stream: 1}})  # fmt: skip
    await dashboard.connect()
    await dashboard.wait(lambda: bool(dashboard.events("order:updated")), timeout=10)
    (update,) = dashboard.events("order:updated")
    assert (update["order"]["id"], update["order"]["status"]) == (order["id"], "cancelled")
    assert update["order"]["status_history"][-1]["reason"] == "timeout"
    await dashboard.close()
