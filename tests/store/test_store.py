"""The store, directly, on every backend it must be right on: nx-27017, mongomock-motor, and a real
MongoDB when MONGODB_URL is set. Where they differ, the code picks what is right on all of them
(docs/store-backends.md)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from store.client import connect
from store.codec import new_id
from store.database import Store
from store.markets import MarketExists
from store.models import Role
from store.users import EmailTaken
from tests.helpers.nx import NxServer

BACKENDS = ["nx-27017", "mongomock"] + (["mongodb"] if os.environ.get("MONGODB_URL") else [])


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, nx_server: NxServer, db_name: str) -> AsyncIterator[Store]:
    if request.param == "mongomock":
        yield Store(AsyncMongoMockClient(tz_aware=True)[db_name])
        return
    url = nx_server.url if request.param == "nx-27017" else os.environ["MONGODB_URL"]
    client = connect(url, timeout_seconds=5)
    store = Store(client[db_name])
    await store.create_indexes()
    yield store
    await client.drop_database(db_name)
    client.close()


def market_fields(name: str = "Market", **fields: Any) -> dict[str, Any]:
    return {"name": name, "description": "", "contact_email": "m@example.com", "address": "x",
            "delivery_options": ["pickup"], "payment_methods": ["cash"], "currency": "UAH", **fields}  # fmt: skip


def product_fields(name: str = "Apples", **fields: Any) -> dict[str, Any]:
    return {"name": name, "description": "", "category": None, "price_cents": 100, "unit": "kg", "stock": 5,
            "is_available": True, **fields}  # fmt: skip


async def test_create_indexes_is_idempotent(store: Store) -> None:
    await store.create_indexes()
    await store.create_indexes()


async def test_users_email_is_unique_ignoring_case(store: Store) -> None:
    await store.create_indexes()
    user = await store.users.insert(email=" Olena@Example.com ", name="Olena", password_hash="h", role=Role.CUSTOMER)
    assert user.email == "Olena@Example.com"
    assert isinstance(user.created_at, datetime)
    assert user.created_at.tzinfo is not None
    with pytest.raises(EmailTaken):
        await store.users.insert(email="OLENA@example.COM", name="Other", password_hash="h", role=Role.MARKET_ADMIN)
    found = await store.users.by_email("olena@EXAMPLE.com")
    assert found is not None
    assert (found.id, found.password_hash, found.role) == (user.id, "h", Role.CUSTOMER)
    assert await store.users.get(user.id) == found
    assert await store.users.get("not-an-id") is None
    assert await store.users.get(new_id()) is None

    updated = await store.users.update(user.id, {"name": "Olena K", "preferences": {"theme": "dark"}})
    assert updated is not None
    assert (updated.name, updated.preferences, updated.created_at) == ("Olena K", {"theme": "dark"}, user.created_at)
    deactivated = await store.users.update(user.id, {"is_active": False})
    assert deactivated is not None
    assert deactivated.is_active is False
    assert await store.users.update(new_id(), {"name": "x"}) is None


async def test_one_market_per_owner(store: Store) -> None:
    await store.create_indexes()
    owner_id = new_id()
    market = await store.markets.insert(owner_id, market_fields())
    with pytest.raises(MarketExists):
        await store.markets.insert(owner_id, market_fields("Second"))
    assert await store.markets.by_owner(owner_id) == market
    assert await store.markets.by_owner(new_id()) is None
    total = await store.markets.search(verified=None, text=None, skip=0, limit=10)
    assert ([item.id for item in total[0]], total[1]) == ([market.id], 1)


async def test_market_update_and_soft_delete(store: Store) -> None:
    market = await store.markets.insert(new_id(), market_fields())
    updated = await store.markets.update(market.id, {"name": "Renamed", "verified": True})
    assert updated is not None
    assert (updated.name, updated.verified, updated.created_at) == ("Renamed", True, market.created_at)
    assert isinstance(updated.updated_at, datetime)  # $currentDate keeps a datetime on every backend
    assert updated.updated_at >= market.updated_at
    assert await store.markets.update("bad", {"name": "x"}) is None

    assert await store.markets.update(market.id, {"is_active": False}) is not None
    hidden = await store.markets.get(market.id)
    assert hidden is not None
    assert hidden.is_active is False
    assert await store.markets.search(verified=None, text=None, skip=0, limit=10) == ([], 0)
    assert await store.markets.search(verified=True, text=None, skip=0, limit=10) == ([], 0)


async def test_market_search_is_literal_paginated_newest_first(store: Store) -> None:
    names = ["Fish (fresh)", "Dots .* here", "Bracket [x", "Back\\slash", "Plain FISH", "Ünïcode Ринок"]
    markets = [await store.markets.insert(new_id(), market_fields(name)) for name in names]
    await store.markets.update(markets[0].id, {"verified": True})
    newest_first = [market.id for market in reversed(markets)]

    async def found(text: str | None, *, verified: bool | None = None, skip: int = 0, limit: int = 10) -> list[str]:
        items, total = await store.markets.search(verified=verified, text=text, skip=skip, limit=limit)
        expected_total = len((await store.markets.search(verified=verified, text=text, skip=0, limit=100))[0])
        assert total == expected_total
        return [item.id for item in items]

    assert await found(None) == newest_first
    assert await found(None, skip=2, limit=3) == newest_first[2:5]
    assert await found(None, skip=10) == []
    assert (await store.markets.search(verified=None, text=None, skip=4, limit=1))[1] == len(names)
    assert await found("fish") == [markets[4].id, markets[0].id]
    assert await found("(") == [markets[0].id]
    assert await found(".*") == [markets[1].id]
    assert await found("[") == [markets[2].id]
    assert await found("\\") == [markets[3].id]
    assert await found("f.sh") == []
    assert await found("ринок") == [markets[5].id]
    assert await found("fish", verified=True) == [markets[0].id]
    assert await found("fish", verified=False) == [markets[4].id]


async def test_stock_holds_are_conditional_and_never_negative(store: Store) -> None:
    product = await store.products.insert(new_id(), "UAH", product_fields(stock=5))
    holds, market_id = store.order_holds, product.market_id
    first, second, third = new_id(), new_id(), new_id()

    async def stock() -> int:
        current = await store.products.get(product.id)
        assert current is not None
        return current.stock

    taken = await holds.take(product.id, first, 3, market_id=market_id)
    assert taken == (product.name, product.price_cents)  # priced as taken
    assert await holds.take(product.id, first, 1, market_id=market_id) is None  # one hold per order and product
    assert await holds.take(product.id, second, 3, market_id=market_id) is None
    assert await holds.take(product.id, second, 1, market_id=new_id()) is None  # not on sale in that market
    assert await stock() == 2
    assert await holds.take(product.id, second, 2, market_id=market_id) is not None
    assert await holds.take(product.id, third, 1, market_id=market_id) is None
    assert await stock() == 0
    # Giving back is idempotent: only a line that is held comes back, once.
    assert await holds.give_back(first, [(product.id, 3)]) == 1
    assert await holds.give_back(first, [(product.id, 3)]) == 0
    assert await stock() == 3
    # Released (the order was written): the stock stays taken and the hold record goes.
    await holds.release([(product.id, second)])
    assert await holds.give_back(second, [(product.id, 2)]) == 0
    assert await stock() == 3
    assert await holds.take(new_id(), third, 1, market_id=market_id) is None
    await store.products.update(product.id, {"is_available": False})
    assert await holds.take(product.id, third, 1, market_id=market_id) is None  # not on sale


async def test_concurrent_holds_never_oversell(store: Store) -> None:
    product = await store.products.insert(new_id(), "UAH", product_fields(stock=10))
    results = await asyncio.gather(
        *(store.order_holds.take(product.id, new_id(), 3, market_id=product.market_id) for _ in range(12))
    )
    assert sum(result is not None for result in results) == 3
    current = await store.products.get(product.id)
    assert current is not None
    assert current.stock == 1


async def test_order_effects_apply_once(store: Store) -> None:
    market = await store.markets.insert(new_id(), market_fields())
    product = await store.products.insert(market.id, "UAH", product_fields(stock=1))
    effects, order_id = store.order_effects, new_id()
    assert await effects.return_stock(product.id, order_id, 4) is True
    assert await effects.return_stock(product.id, order_id, 4) is False
    assert await effects.count(market.id, f"{order_id}:1", orders=1, revenue_cents=700) is True
    assert await effects.count(market.id, f"{order_id}:1", orders=1, revenue_cents=700) is False
    assert await effects.count(market.id, f"{order_id}:2", orders=-1, revenue_cents=-700) is True
    restocked, counted = await store.products.get(product.id), await store.markets.get(market.id)
    assert restocked is not None and counted is not None
    assert restocked.stock == 5
    assert (counted.total_orders, counted.total_revenue_cents) == (0, 0)


async def test_product_search_filters_and_pagination(store: Store) -> None:
    market_id, other_market_id = new_id(), new_id()
    specs = [
        product_fields("Apples (red)", category="fruit", stock=5),
        product_fields("Pears", category="fruit", stock=0),
        product_fields("Milk 2.5%", category="dairy", stock=3, is_available=False),
        product_fields("Cheese", category="dairy", stock=1, description="aged [12m] .* \\"),
    ]
    products = [await store.products.insert(market_id, "UAH", spec) for spec in specs]
    await store.products.insert(other_market_id, "EUR", product_fields("Pears", category="fruit"))

    async def names(**filters: Any) -> list[str]:
        query: dict[str, Any] = {"market_id": market_id, "text": None, "category": None, "in_stock": None,
                                 "skip": 0, "limit": 10, **filters}  # fmt: skip
        items, total = await store.products.search(**query)
        if query["skip"] == 0:
            assert total == len(items)
        return [item.name for item in items]

    assert await names() == ["Cheese", "Milk 2.5%", "Pears", "Apples (red)"]
    assert await names(skip=1, limit=2) == ["Milk 2.5%", "Pears"]
    assert (await store.products.search(market_id=market_id, text=None, category=None, in_stock=None, skip=1,
                                        limit=2))[1] == 4  # fmt: skip
    assert await names(category="fruit") == ["Pears", "Apples (red)"]
    assert await names(in_stock=True) == ["Cheese", "Apples (red)"]
    assert await names(in_stock=False) == ["Milk 2.5%", "Pears"]
    assert await names(text="(RED)") == ["Apples (red)"]
    assert await names(text="[12m]") == ["Cheese"]
    assert await names(text=".*") == ["Cheese"]
    assert await names(text="\\") == ["Cheese"]
    assert await names(text="2.5%") == ["Milk 2.5%"]
    assert await names(text="p..rs") == []
    assert await names(market_id=None, text="pears") == ["Pears", "Pears"]
    assert await names(market_id="bad") == []
    many = await store.products.get_many([product.id for product in products] + ["bad", new_id()])
    assert set(many) == {product.id for product in products}


async def test_product_update_and_soft_delete(store: Store) -> None:
    market_id = new_id()
    product = await store.products.insert(market_id, "UAH", product_fields())
    updated = await store.products.update(product.id, {"price_cents": 250, "category": "fruit"})
    assert updated is not None
    assert (updated.price_cents, updated.category, updated.created_at) == (250, "fruit", product.created_at)
    assert updated.updated_at >= product.updated_at

    assert await store.products.delete(product.id) is True
    assert await store.products.delete(product.id) is False
    assert await store.products.delete("bad") is False
    assert await store.products.get(product.id) is None
    assert await store.products.update(product.id, {"stock": 1}) is None
    assert await store.products.get_many([product.id]) == {}
    search = await store.products.search(market_id=market_id, text=None, category=None, in_stock=None, skip=0,
                                         limit=10)  # fmt: skip
    assert search == ([], 0)
    # The document stays for the orders that point at it, and stock can still come back.
    await store.order_effects.return_stock(product.id, new_id(), 2)
    kept = await store.products.collection.find_one({"_id": product.id})
    assert kept is not None
    assert kept["stock"] == 7
