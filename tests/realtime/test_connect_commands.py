"""What accepting a /dashboard connection costs in database commands, counted on the hub's own
client (tests/api/test_order_commands.py has the listener): the token's user, the market check, and
the first `stats` from the figures this instance keeps for the market (hub/realtime/stats.py),
not an aggregation per connection. A count, not a timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.api.test_order_commands import CommandLog, command_log, sweeper_round_done
from tests.helpers.api import server_url
from tests.helpers.socket_clients import LiveClient, dashboard_auth, open_shop

__all__ = ["command_log"]  # the fixture, used by name


@pytest.fixture
def settings(make_settings: Callable[..., Settings], command_log: CommandLog) -> Settings:
    return make_settings(order_sweep_interval_seconds=3600)


async def connect_dashboard(client: TestClient, log: CommandLog, shop: Any) -> tuple[LiveClient, list[str]]:
    mark = len(log.commands)
    dashboard = LiveClient(server_url(client), "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    await dashboard.connect()
    await dashboard.wait(lambda: bool(dashboard.events("stats")))
    return dashboard, [f"{name} {target}" for name, target in log.since(mark)]


async def test_a_dashboard_connects_with_a_user_read_and_a_market_read(
    client: TestClient, command_log: CommandLog
) -> None:
    shop = await open_shop(client)
    await sweeper_round_done(command_log)
    first, commands = await connect_dashboard(client, command_log, shop)
    print(f"first dashboard of the market: {commands}")
    assert commands == ["find users", "find markets", "aggregate orders"]  # the figures, computed once
    watching = [first]
    for _ in range(3):
        dashboard, commands = await connect_dashboard(client, command_log, shop)
        watching.append(dashboard)
        print(f"next dashboard: {commands}")
        assert commands == ["find users", "find markets"]
    # An order changes the figures: the push computes them again, and the next connection is
    # sent those, still without an aggregation of its own.
    await shop.place_order(shop.customers[0])
    await first.wait(lambda: any(data["orders_total"] == 1 for data in first.events("stats")))
    dashboard, commands = await connect_dashboard(client, command_log, shop)
    watching.append(dashboard)
    assert commands == ["find users", "find markets"]
    assert dashboard.events("stats")[0]["orders_total"] == 1
    for live in watching:
        await live.close()
