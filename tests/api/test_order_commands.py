"""How many database commands placing an order sends, counted on the hub's own client with a
PyMongo command listener (issue 10's budget: a one-line order with an Idempotency-Key, both of
its events included, in at most 8 commands, and at most one more per extra line). A count, not a
timing: the same on any machine.

Counted in the steady state: each test first places one order for the same customer on the same
market, so the event history's per-stream numbering hints are warm (a stream's first event after
a start costs one more read; store/events.py). What a placement leaves for later (its holds
released, its counter marker dropped: hub/orders/cleanup.py) is written for a batch of orders at
once; it is flushed before the count starts and counted on its own."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pymongo import monitoring

import hub.database
from hub.keys import order_placing_key, store_key
from hub.realtime.catalog import CatalogPusher
from hub.settings import Settings
from store.client import connect
from tests.helpers.api import Account, expect_error, make_market, make_product, place_order, sign_up

BUDGET_ONE_LINE = 8
WAIT_SECONDS = 10


class CommandLog(monitoring.CommandListener):
    """Every command the hub's client starts on the test's database."""

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.commands: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.db_name:
            self.commands.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def since(self, mark: int) -> list[tuple[str, Any]]:
        return self.commands[mark:]


@pytest.fixture
def command_log(db_name: str, monkeypatch: pytest.MonkeyPatch) -> CommandLog:
    log = CommandLog(db_name)
    monkeypatch.setattr(hub.database, "connect", functools.partial(connect, event_listeners=[log]))
    # The storefronts' live stock (hub/realtime/catalog.py) reads the products an order changed in a
    # task of its own, coalesced per market (at most one read per market per interval, whatever the
    # number of orders): not the order's request, and its timing would make the counts flaky.
    monkeypatch.setattr(CatalogPusher, "products_changed", lambda self, market_id, product_ids: None)
    return log


@pytest.fixture
def settings(make_settings: Callable[..., Settings], command_log: CommandLog) -> Settings:
    # The sweeper's first round runs at start (waited for below), then not again during the test.
    return make_settings(order_sweep_interval_seconds=3600)


@pytest.fixture
async def shop(client: TestClient, app: web.Application, command_log: CommandLog) -> dict[str, Any]:
    owner = await sign_up(client, "market_admin")
    market = await make_market(client, owner, payment_methods=["cash"], delivery_options=["pickup"])
    products = [await make_product(client, owner, market["id"], name=f"P{i}", stock=10) for i in range(5)]
    await sweeper_round_done(command_log)
    return {"owner": owner, "market": market, "products": products}


async def sweeper_round_done(log: CommandLog) -> None:
    """The sweeper's start-up round ends with its look for pending orders past the timeout."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not any(name == "find" and target == "orders" for name, target in log.commands):
            await asyncio.sleep(0.01)


async def counted(
    app: web.Application, log: CommandLog, request: Callable[[], Any]
) -> tuple[Any, list[tuple[str, Any]]]:
    cleanup = app[order_placing_key].cleanup
    await cleanup.flush()  # what earlier orders left for later is written before the count starts
    mark = len(log.commands)
    response = await request()
    await response.read()
    commands = log.since(mark)
    mark = len(log.commands)
    await cleanup.flush()
    print(f"  left for the next batch: {summary(log.since(mark))}")
    return response, commands


def lines_of(shop: dict[str, Any], count: int) -> list[tuple[str, int]]:
    return [(product["id"], 1) for product in shop["products"][:count]]


async def warm_customer(client: TestClient, shop: dict[str, Any]) -> Account:
    customer = await sign_up(client)
    response = await place_order(client, customer, shop["market"]["id"], lines_of(shop, 1))
    assert response.status == 201, await response.text()
    return customer


def summary(commands: list[tuple[str, Any]]) -> str:
    return ", ".join(f"{name} {target}" for name, target in commands)


@pytest.mark.parametrize("lines", [1, 2, 5])
async def test_placing_stays_within_the_command_budget(
    client: TestClient, app: web.Application, shop: dict[str, Any], command_log: CommandLog, lines: int
) -> None:
    customer = await warm_customer(client, shop)
    key = f"count-{uuid.uuid4().hex}"
    response, commands = await counted(
        app, command_log, lambda: place_order(client, customer, shop["market"]["id"], lines_of(shop, lines), key=key)
    )
    assert response.status == 201, await response.text()
    print(f"{lines}-line order with a key: {len(commands)} commands: {summary(commands)}")
    assert len(commands) <= BUDGET_ONE_LINE + lines - 1, summary(commands)
    # Counted with both of its events: they are in the history, and the order is left clean.
    order_id = (await response.json())["id"]
    db = app[store_key].db
    streams = {f"market:{shop['market']['id']}", f"user:{customer.id}"}
    stored = await db["event_history"].find({"key": {"$regex": f"\\|{order_id}\\|"}}).to_list(None)
    assert {event["stream"] for event in stored} == streams and len(stored) == 2
    document = await db["orders"].find_one({"_id": order_id})
    assert document is not None
    assert not {"outbox", "outbox_ms", "placing", "holds_ms"} & set(document) and not document.get("effects")
    stock = await db["products"].find({"_id": {"$in": [pid for pid, _ in lines_of(shop, lines)]}}).to_list(None)
    # The warm-up order took one of the first product; this order one of each.
    assert sorted(product["stock"] for product in stock) == [8] + [9] * (lines - 1)
    assert not any(product.get("holds") for product in stock)


async def test_a_replay_costs_less_than_a_placement(
    client: TestClient, app: web.Application, shop: dict[str, Any], command_log: CommandLog
) -> None:
    customer = await warm_customer(client, shop)
    key = f"replay-{uuid.uuid4().hex}"
    first = await place_order(client, customer, shop["market"]["id"], lines_of(shop, 1), key=key)
    assert first.status == 201, await first.text()
    response, commands = await counted(
        app, command_log, lambda: place_order(client, customer, shop["market"]["id"], lines_of(shop, 1), key=key)
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["id"] == (await first.json())["id"]
    print(f"replay: {len(commands)} commands: {summary(commands)}")
    assert len(commands) <= BUDGET_ONE_LINE, summary(commands)


async def test_an_order_refused_for_stock_stays_within_the_budget(
    client: TestClient, app: web.Application, shop: dict[str, Any], command_log: CommandLog
) -> None:
    customer = await warm_customer(client, shop)
    product_id = shop["products"][0]["id"]
    response, commands = await counted(
        app,
        command_log,
        lambda: place_order(client, customer, shop["market"]["id"], [(product_id, 50)], key=uuid.uuid4().hex),
    )
    await expect_error(response, 409, "INSUFFICIENT_STOCK")
    print(f"refused for stock: {len(commands)} commands: {summary(commands)}")
    assert len(commands) <= BUDGET_ONE_LINE, summary(commands)
