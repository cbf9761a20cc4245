"""Order events survive the death of the process that wrote the order (the outbox in the order
document, hub/orders/followup.py): a 'kill' between the order write and the history write is simulated by
a publisher that dies at that point; the sweeper's repair pass then publishes what was left,
once, in order, even when several instances repair at the same moment. Real servers, real
Socket.IO clients, nx-27017 (and mongomock-motor for the store-level rules)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from mongomock_motor import AsyncMongoMockClient

from hub.app import create_app
from hub.keys import order_follow_up_key, order_sweeper_key, realtime_key, store_key
from hub.orders.cleanup import MARKER_RETENTION_SECONDS
from hub.settings import Settings
from store.client import connect
from store.codec import now
from store.database import Store
from store.events import EventLog
from store.models import Order, OrderItem, OrderStatus, PendingEvent, StatusChange
from tests.helpers.api import server_url
from tests.helpers.faults import PublisherDies
from tests.helpers.socket_clients import LiveClient, Shop, barrier, dashboard_auth, open_shop

# The sweeper stays out of the way: each test runs the repair pass itself, when it means to.
QUIET_SWEEPER = {"order_sweep_interval_seconds": 3600}
SHARED_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_name: str) -> Settings:
    # Through Redis (a channel of its own), as in production: a second instance's emits reach
    # the clients connected to the first.
    return make_settings(redis_url=SHARED_REDIS, redis_channel=f"test-{db_name}", **QUIET_SWEEPER)


async def watch(client: TestClient, shop: Shop) -> tuple[LiveClient, LiveClient]:
    url = server_url(client)
    dashboard = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    feed = LiveClient(url, "/orders", {"token": shop.customers[0].token})
    await asyncio.gather(dashboard.connect(), feed.connect())
    return dashboard, feed


def versions(live: LiveClient) -> list[tuple[str, int, str, str | None]]:
    return [(name, data["order"]["version"], data["order"]["status"], data.get("previous_status"))
            for name, data, _ in live.received if name in ("order:created", "order:updated")]  # fmt: skip


async def outbox_of(app: web.Application, order_id: str) -> Any:
    document = await app[store_key].orders.collection.find_one({"_id": order_id})
    assert document is not None
    return document.get("outbox"), document.get("outbox_ms")


async def age_outboxes(app: web.Application, seconds: int = 60) -> None:
    """What time does to a dead writer's outbox: the repair bound has passed."""
    await app[store_key].orders.collection.update_many(
        {"outbox_ms": {"$exists": True}}, {"$inc": {"outbox_ms": -seconds * 1000}}
    )


async def test_events_left_by_a_killed_writer_are_published_once_in_order(
    client: TestClient, app: web.Application, publisher_dies: PublisherDies
) -> None:
    shop = await open_shop(client)
    dashboard, feed = await watch(client, shop)
    with publisher_dies():
        placed = await shop.place_order(shop.customers[0])
        await shop.move(placed["id"], "confirmed")
        await shop.move(placed["id"], "preparing")
    assert "outbox" not in placed
    outbox, _ = await outbox_of(app, placed["id"])
    assert [(event["name"], event["version"]) for event in outbox] == [
        ("order:created", 1), ("order:updated", 2), ("order:updated", 3)]  # fmt: skip
    shown = await client.get(f"/api/v1/orders/{placed['id']}", headers=shop.admin.headers)
    assert "outbox" not in await shown.json()

    sweeper = app[order_sweeper_key]
    assert await sweeper.publish_unpublished() == 0  # younger than the repair bound: maybe still in flight
    await age_outboxes(app)
    assert await sweeper.publish_unpublished() == 1
    expected = [("order:created", 1, "pending", None), ("order:updated", 2, "confirmed", "pending"),
                ("order:updated", 3, "preparing", "confirmed")]  # fmt: skip
    for live in (dashboard, feed):
        await live.wait(lambda live=live: len(live.events()) >= 3)
    assert await app[order_sweeper_key].publish_unpublished(older_than=timedelta(0)) == 0  # nothing left
    await barrier(shop, shop.customers[0], dashboard, feed)  # a second copy would have arrived before it
    for live in (dashboard, feed):
        assert versions(live) == expected
        assert live.seqs() == [1, 2, 3]
        assert not live.events("resync")
    assert await outbox_of(app, placed["id"]) == (None, None)
    await asyncio.gather(dashboard.close(), feed.close())


async def test_a_move_publishes_the_created_event_a_killed_placement_left_first(
    client: TestClient, app: web.Application, publisher_dies: PublisherDies
) -> None:
    shop = await open_shop(client)
    dashboard, feed = await watch(client, shop)
    with publisher_dies():
        placed = await shop.place_order(shop.customers[0])

    await shop.move(placed["id"], "confirmed")  # waits a moment for the dead writer, then publishes for it
    for live in (dashboard, feed):
        await live.wait(lambda live=live: len(live.events()) >= 2)
        assert versions(live) == [("order:created", 1, "pending", None), ("order:updated", 2, "confirmed", "pending")]
        assert live.seqs() == [1, 2]
    assert await outbox_of(app, placed["id"]) == (None, None)
    await asyncio.gather(dashboard.close(), feed.close())


async def test_a_writer_killed_after_the_history_write_is_not_published_twice(
    client: TestClient, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    dashboard, feed = await watch(client, shop)

    async def killed(order_id: str, version: int, **_: Any) -> bool:
        raise RuntimeError("killed after the history write, before clearing the outbox")

    store_orders = app[store_key].orders
    with monkeypatch.context() as patch:
        patch.setattr(store_orders, "clear_outbox", killed)
        placed = await shop.place_order(shop.customers[0])
    for live in (dashboard, feed):
        await live.wait(lambda live=live: len(live.events()) >= 1)
    assert (await outbox_of(app, placed["id"]))[0] is not None

    await age_outboxes(app)
    assert await app[order_sweeper_key].publish_unpublished() == 1
    await shop.move(placed["id"], "confirmed")
    for live in (dashboard, feed):
        await live.wait(lambda live=live: len(live.events()) >= 2)
    assert await app[realtime_key].events.current_seq(f"market:{shop.market_id}") == 2
    history = app[store_key].db["event_history"]
    assert await history.count_documents({"stream": f"market:{shop.market_id}"}) == 2
    await barrier(shop, shop.customers[0], dashboard, feed)
    for live in (dashboard, feed):
        # The repair cannot know the writer emitted before it died: it emits the stored event
        # again, same seq and payload; the instance that delivered it already does not deliver it
        # twice (hub/realtime/delivery.py).
        assert applied_by_seq(live) == [(1, "order:created"), (2, "order:updated")]
        assert live.seqs() == [1, 2]
    await asyncio.gather(dashboard.close(), feed.close())


def applied_by_seq(live: LiveClient) -> list[tuple[int, str]]:
    """What a client applies: each seq once, in order; a seq received again must be the same event."""
    seen: dict[int, tuple[str, Any]] = {}
    for name, data, _ in live.received:
        if name in ("order:created", "order:updated"):
            assert seen.setdefault(data["seq"], (name, data)) == (name, data)
    assert not live.events("resync")
    return [(seq, seen[seq][0]) for seq in sorted(seen)]


class LostEmits:
    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        """The process dies after the history write, before the emit leaves it."""


async def test_an_event_stored_but_never_emitted_is_emitted_by_the_repair(
    client: TestClient, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    dashboard, feed = await watch(client, shop)

    async def killed(order_id: str, version: int, **_: Any) -> bool:
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(app[realtime_key].publisher, "emitter", LostEmits())
        patch.setattr(app[store_key].orders, "clear_outbox", killed)
        placed = await shop.place_order(shop.customers[0])
    await asyncio.sleep(0.3)
    assert not dashboard.events() and not feed.events()  # nobody heard of it: it was the last event

    await age_outboxes(app)
    assert await app[order_sweeper_key].publish_unpublished() == 1
    for live in (dashboard, feed):
        await live.wait(lambda live=live: len(live.events()) >= 1)
        assert versions(live) == [("order:created", 1, "pending", None)]
        assert live.seqs() == [1]
    assert await outbox_of(app, placed["id"]) == (None, None)
    await asyncio.gather(dashboard.close(), feed.close())


async def recount(app: web.Application, shop: Shop) -> tuple[tuple[int, int], tuple[int, int]]:
    """(stored counters, recount from the orders) and (stored stock, stock from the orders)."""
    db = app[store_key].db
    market = await db["markets"].find_one({"_id": shop.market_id})
    product = await db["products"].find_one({"_id": shop.product["id"]})
    assert market is not None and product is not None
    live = [order async for order in db["orders"].find({"market_id": shop.market_id, "status": {"$ne": "cancelled"}})]
    taken = sum(item["quantity"] for order in live for item in order["items"])
    return (
        ((market["total_orders"], market["total_revenue_cents"]),
         (len(live), sum(order["total_cents"] for order in live))),
        (product["stock"], shop.product["stock"] - taken),
    )  # fmt: skip


async def markers_left(app: web.Application, shop: Shop) -> tuple[Any, Any]:
    db = app[store_key].db
    market = await db["markets"].find_one({"_id": shop.market_id})
    product = await db["products"].find_one({"_id": shop.product["id"]})
    assert market is not None and product is not None
    return market.get("counted") or None, product.get("returned") or None


async def markers_dropped_when_due(*apps: web.Application) -> None:
    """What the instances' marker cleanups write once the retention has passed."""
    for instance in apps:
        cleanup = instance[order_follow_up_key].cleanup
        assert cleanup is not None
        later = cleanup.monotonic() + MARKER_RETENTION_SECONDS
        cleanup.monotonic = lambda later=later: later
        await cleanup.flush()


class FakeMonotonic:
    """The instances' monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def use_clock(patch: pytest.MonkeyPatch, clock: FakeMonotonic, *apps: web.Application) -> None:
    for instance in apps:
        follow_up = instance[order_follow_up_key]
        patch.setattr(follow_up, "monotonic", clock, raising=False)
        patch.setattr(follow_up.cleanup, "monotonic", clock, raising=False)


async def stalled_cancellation(
    client: TestClient, shop: Shop, order_id: str, stall: tuple[Any, str], patch: pytest.MonkeyPatch
) -> tuple[asyncio.Task[dict[str, Any]], asyncio.Event]:
    """The admin cancels the order on the first instance, whose writer stalls in `stall` (an object
    and the name of one of its coroutine methods) the first time it gets there, until the test
    sets the event it is given back."""
    target, name = stall
    original, reached, resume = getattr(target, name), asyncio.Event(), asyncio.Event()

    async def stalled(*args: Any, **kwargs: Any) -> Any:
        if not reached.is_set():
            reached.set()
            await resume.wait()
        return await original(*args, **kwargs)

    patch.setattr(target, name, stalled)
    moving = asyncio.create_task(shop.move(order_id, "cancelled"))
    async with asyncio.timeout(10):
        await reached.wait()
    return moving, resume


async def test_a_stock_write_in_flight_when_the_repair_clears_its_effect_is_refused_by_the_marker(
    client: TestClient, app: web.Application, second_app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer has checked that its read is fresh and sent the stock write; it lands after the
    other instance's repair pass applied the effect and cleared it (a loaded machine): the marker is
    still there, so the units come back once."""
    shop = await open_shop(client, stock=100)
    placed = await shop.place_order(shop.customers[0], quantity=5)
    with monkeypatch.context() as patch:
        stall = (app[store_key].order_effects, "return_stock")
        moving, resume = await stalled_cancellation(client, shop, placed["id"], stall, patch)
        await age_outboxes(app)
        assert await second_app[order_sweeper_key].publish_unpublished() == 1
        await second_app[order_follow_up_key].cleanup.flush()
        _, stock = await recount(app, shop)
        assert stock[0] == stock[1] == 100
        resume.set()
        async with asyncio.timeout(10):
            await moving
    counters, stock = await recount(app, shop)
    assert stock[0] == stock[1] == 100, "units returned twice"
    assert counters[0] == counters[1] == (0, 0)
    await markers_dropped_when_due(app, second_app)
    assert await markers_left(app, shop) == (None, None)


async def test_a_writer_stalled_past_the_repair_bound_leaves_its_effects_to_the_repair(
    client: TestClient, app: web.Application, second_app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer stalls after its write, before applying its effects, for longer than the repair
    bound: the repair pass applies them and clears them, and their markers are gone by the time the
    writer goes on. The writer's read is too old to act on: it applies nothing."""
    shop = await open_shop(client, stock=100)
    placed = await shop.place_order(shop.customers[0], quantity=5)
    clock = FakeMonotonic()
    with monkeypatch.context() as patch:
        use_clock(patch, clock, app, second_app)
        stall = (app[realtime_key].publisher, "publish_pending")
        moving, resume = await stalled_cancellation(client, shop, placed["id"], stall, patch)
        clock.now += 60
        await age_outboxes(app)
        assert await second_app[order_sweeper_key].publish_unpublished() == 1
        clock.now += MARKER_RETENTION_SECONDS
        await second_app[order_follow_up_key].cleanup.flush()
        counted, returned = await markers_left(app, shop)
        assert returned is None and f"{placed['id']}:2" not in (counted or {})  # the repair's markers are gone
        resume.set()
        async with asyncio.timeout(10):
            await moving
    counters, stock = await recount(app, shop)
    assert stock[0] == stock[1] == 100, "units returned twice"
    assert counters[0] == counters[1] == (0, 0), "cancellation counted twice"


async def test_counters_and_stock_left_by_a_killed_writer_are_applied_once(
    client: TestClient, app: web.Application, second_app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client, stock=100)
    effects = app[store_key].order_effects
    store_orders = app[store_key].orders

    async def killed(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("killed")

    # Killed before the counters write of a placement, and before the stock write of a cancellation.
    with monkeypatch.context() as patch:
        patch.setattr(effects, "count", killed)
        patch.setattr(effects, "return_stock", killed)
        kept = await shop.place_order(shop.customers[0], quantity=3)
        cancelled = await shop.place_order(shop.customers[0], quantity=5)
        await shop.move(cancelled["id"], "cancelled")
    # Killed after the counters/stock writes, before the entries are cleared from the order.
    with monkeypatch.context() as patch:
        patch.setattr(store_orders, "clear_effect", killed)
        patch.setattr(store_orders, "clear_outbox", killed)  # (which clears a writer's effects with its events)
        applied = await shop.place_order(shop.customers[0], quantity=7)
        applied_then_cancelled = await shop.place_order(shop.customers[0], quantity=11)
        await shop.move(applied_then_cancelled["id"], "cancelled")
    counters, stock = await recount(app, shop)
    assert counters[0] != counters[1] and stock[0] != stock[1]  # what the kills lost
    documents = {order["id"]: await store_orders.collection.find_one({"_id": order["id"]})
                 for order in (kept, cancelled, applied, applied_then_cancelled)}  # fmt: skip
    assert sorted(documents[cancelled["id"]]["effects"]) == ["count:1", "count:2", "restock:2"]
    shown = await client.get(f"/api/v1/orders/{cancelled['id']}", headers=shop.admin.headers)
    assert "effects" not in await shown.json()
    for path in (f"/api/v1/markets/{shop.market_id}", f"/api/v1/products/{shop.product['id']}"):
        response = await client.get(path)
        body = await response.json()
        assert "counted" not in body and "returned" not in body

    assert await app[order_sweeper_key].publish_unpublished() == 0  # younger than the repair bound
    await age_outboxes(app)
    repairs = [app[order_sweeper_key], second_app[order_sweeper_key]] * 2
    counts = await asyncio.gather(*(repair.publish_unpublished() for repair in repairs))
    assert sum(counts) == 4  # each order repaired by exactly one pass
    await age_outboxes(app)
    assert await app[order_sweeper_key].publish_unpublished(older_than=timedelta(0)) == 0  # nothing left
    counters, stock = await recount(app, shop)
    assert counters[0] == counters[1] == (2, (3 + 7) * 1000)
    assert stock[0] == stock[1] == 100 - 10
    for order in (kept, cancelled, applied, applied_then_cancelled):
        document = await store_orders.collection.find_one({"_id": order["id"]})
        assert document is not None and not document.get("effects") and "outbox_ms" not in document
    # Whoever clears an entry drops its markers, once the retention has passed: the repair did, for all of them.
    assert (await markers_left(app, shop))[1] is not None
    await markers_dropped_when_due(app, second_app)
    assert await markers_left(app, shop) == (None, None)


async def test_a_move_does_not_apply_an_earlier_writers_effects(
    client: TestClient, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The placement's counter write is still pending (its writer may be alive) when a move
    carries it over: the move leaves it to its writer or the repair pass, which applies it once."""
    shop = await open_shop(client)

    async def killed(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(app[store_key].order_effects, "count", killed)
        placed = await shop.place_order(shop.customers[0])
    await shop.move(placed["id"], "confirmed")
    counters, _ = await recount(app, shop)
    assert counters[0] == (0, 0)
    document = await app[store_key].orders.collection.find_one({"_id": placed["id"]})
    assert document is not None and list(document["effects"]) == ["count:1"] and "outbox" not in document
    await age_outboxes(app)
    assert await app[order_sweeper_key].publish_unpublished() == 1
    counters, stock = await recount(app, shop)
    assert counters[0] == counters[1] == (1, 1000)
    assert stock[0] == stock[1]
    await markers_dropped_when_due(app)
    assert await markers_left(app, shop) == (None, None)


@pytest.fixture
async def second_app(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], settings: Settings
) -> AsyncIterator[web.Application]:
    """Another instance on the same database (its own publisher, sweeper and server)."""
    other = await aiohttp_client(create_app(settings))
    yield other.app


async def test_two_instances_repairing_at_once_publish_each_event_once(
    client: TestClient, app: web.Application, second_app: web.Application, publisher_dies: PublisherDies
) -> None:
    shop = await open_shop(client, customers=1)
    dashboard, feed = await watch(client, shop)
    with publisher_dies():
        placed = [await shop.place_order(shop.customers[0]) for _ in range(4)]
        await shop.move(placed[0]["id"], "confirmed")
    await age_outboxes(app)

    repairs = [app[order_sweeper_key], second_app[order_sweeper_key]] * 2
    counts = await asyncio.gather(*(repair.publish_unpublished() for repair in repairs))
    assert sum(counts) == 4  # every order repaired by exactly one pass
    for live in (dashboard, feed):
        await live.wait(lambda live=live: len(live.events()) >= 5)
    await asyncio.sleep(0.3)
    for live in (dashboard, feed):
        # Two instances emit through Redis: arrival order may differ from seq order (a client
        # applies by seq, static/js/live.js), but each seq comes once.
        assert sorted(live.seqs()) == [1, 2, 3, 4, 5]
        by_seq = sorted((data["seq"], data["order"]["id"], name) for name, data, _ in live.received
                        if name.startswith("order:"))  # fmt: skip
        names = [(order_id, name) for _, order_id, name in by_seq]
        assert sorted(names) == sorted([(order["id"], "order:created") for order in placed]
                                       + [(placed[0]["id"], "order:updated")])  # fmt: skip
        assert names.index((placed[0]["id"], "order:created")) < names.index((placed[0]["id"], "order:updated"))
    await asyncio.gather(dashboard.close(), feed.close())


async def test_publishers_racing_on_one_event_store_it_once(
    client: TestClient, app: web.Application, second_app: web.Application, publisher_dies: PublisherDies
) -> None:
    """No claim at all (the publishers themselves, at once): the history's unique key still keeps
    one copy, and the losers take no number (no hole)."""
    shop = await open_shop(client)
    dashboard, feed = await watch(client, shop)
    with publisher_dies():
        placed = await shop.place_order(shop.customers[0])
    order = await app[store_key].orders.get(placed["id"])
    assert order is not None and order.outbox

    publishers = [app[realtime_key].publisher, second_app[realtime_key].publisher] * 3
    results = await asyncio.gather(*(p.publish_pending(order, fresh_version=None) for p in publishers))
    assert all(results)
    history = app[store_key].db["event_history"]
    stream = f"market:{shop.market_id}"
    assert await history.count_documents({"stream": stream}) == 1
    assert await app[realtime_key].events.current_seq(stream) == 1
    await dashboard.wait(lambda: len(dashboard.events()) >= 1)
    await asyncio.sleep(0.3)
    # A repair that finds the event stored emits it again (same seq and payload; see above).
    assert applied_by_seq(dashboard) == [(1, "order:created")]
    await asyncio.gather(dashboard.close(), feed.close())


# The store-level rules the above rely on, on both local backends.


@pytest.fixture(params=["nx-27017", "mongomock"])
async def store(request: pytest.FixtureRequest, mongo_url: str, db_name: str) -> AsyncIterator[Store]:
    if request.param == "mongomock":
        yield Store(AsyncMongoMockClient()[db_name])
        return
    mongo = connect(mongo_url, timeout_seconds=5)
    try:
        yield Store(mongo[db_name])
    finally:
        mongo.close()


def new_order(order_id: str) -> Order:
    stamp = now()
    return Order(
        id=order_id, market_id="6" * 24, customer_id="7" * 24,
        items=[OrderItem(product_id="8" * 24, name="x", unit_price_cents=1, quantity=1, line_total_cents=1)],
        total_cents=1, currency="UAH", status=OrderStatus.PENDING,
        status_history=[StatusChange(status=OrderStatus.PENDING, at=stamp, by="7" * 24)],
        delivery_option="pickup", payment_method="cash", version=1, created_at=stamp, updated_at=stamp,
        outbox=[PendingEvent(name="order:created", version=1)],
    )  # fmt: skip


async def test_store_outbox_travels_with_the_order_and_clears_by_version(store: Store) -> None:
    await store.create_indexes()
    order = new_order("a" * 24)
    await store.orders.insert(order)
    stamp = now()
    moved = order.model_copy(update={
        "status": OrderStatus.CONFIRMED, "version": 2, "updated_at": stamp,
        "status_history": [*order.status_history, StatusChange(status=OrderStatus.CONFIRMED, at=stamp, by="x")],
        "outbox": [*order.outbox, PendingEvent(name="order:updated", version=2)],
    })  # fmt: skip
    written = await store.orders.replace_if_unchanged(order, moved)
    assert written is not None
    assert [(event.name, event.version) for event in written.outbox] == [("order:created", 1), ("order:updated", 2)]
    assert written.at_version(1) == order.model_copy(update={"outbox": []})
    assert "outbox" not in written.model_dump()
    assert await store.orders.with_unpublished_events(0, limit=10) == []
    future = 2**62
    assert [o.id for o in await store.orders.with_unpublished_events(future, limit=10)] == [order.id]
    assert await store.orders.claim_outbox(written, future)
    assert not await store.orders.claim_outbox(order, future)  # it moved on: its writer publishes
    assert not await store.orders.clear_outbox(order.id, 1)  # published from version 1, now at 2
    assert await store.orders.clear_outbox(order.id, 2)
    cleared = await store.orders.get(order.id)
    assert cleared is not None and cleared.outbox == []
    assert await store.orders.with_unpublished_events(future, limit=10) == []


async def test_store_history_keeps_one_event_per_key(store: Store) -> None:
    log = EventLog(store.db, max_events=1000, max_age=timedelta(hours=24))
    await log.create_indexes()
    first = await log.append("market:m", "order:created", {"n": 1}, key="k")
    assert first is not None and first.seq == 1
    assert await log.append("market:m", "order:created", {"n": 2})
    assert await log.append("market:m", "order:created", {"n": 3})  # unkeyed events do not collide
    assert await log.append("market:m", "order:created", {"n": 4}, key="k") is None
    assert await log.has("k") and not await log.has("other")
    assert await log.by_key("k") == first
    assert [event.seq for event in await log.after("market:m", 0, limit=10)] == [1, 2, 3]
    assert (await log.append("market:m", "order:created", {"n": 5})) is not None  # no number lost
    assert [event.seq for event in await log.after("market:m", 0, limit=10)] == [1, 2, 3, 4]
