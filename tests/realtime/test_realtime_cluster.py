"""Two hub processes sharing one nx-27017 database and one Redis channel: events cross instances,
survive a Redis outage through the history, drive live stats, and can come from outside."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import aiohttp
import pytest

from hub.realtime.external import publish_order_event
from hub.settings import Settings
from store.models import Order, OrderStatus
from tests.helpers.api import TEST_SECRET
from tests.helpers.processes import HubFleet, HubProcess, RedisServer
from tests.helpers.socket_clients import LiveClient, dashboard_auth, open_shop

SHARED_REDIS = "redis://127.0.0.1:6379/0"
LIMITS = {"rate_limit_per_minute": "100000", "rate_limit_per_hour": "1000000"}

pytestmark = pytest.mark.slow


async def start_pair(fleet: HubFleet, db_name: str, redis_url: str) -> tuple[HubProcess, HubProcess]:
    channel = f"test-{uuid.uuid4().hex[:12]}"
    a, b = await asyncio.gather(*(
        asyncio.to_thread(fleet.start, db_name=db_name, redis_url=redis_url, redis_channel=channel, **LIMITS)
        for _ in range(2)
    ))  # fmt: skip
    return a, b


@pytest.fixture
async def sessions() -> AsyncIterator[list[aiohttp.ClientSession]]:
    made: list[aiohttp.ClientSession] = []
    yield made
    for session in made:
        await session.close()


def session_for(hub: HubProcess, sessions: list[aiohttp.ClientSession]) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(base_url=hub.url)
    sessions.append(session)
    return session


async def test_an_order_on_a_reaches_b_and_only_those_who_may_see_it(
    hubs: HubFleet,
    db_name: str,
    sessions: list[aiohttp.ClientSession],
) -> None:
    a, b = await start_pair(hubs, db_name, SHARED_REDIS)
    http_a = session_for(a, sessions)
    shop = await open_shop(http_a, customers=2)
    other = await open_shop(http_a, customers=0)
    buyer, bystander = shop.customers

    dashboard_b = LiveClient(b.url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    dashboard_a = LiveClient(a.url, "/dashboard", dashboard_auth(shop.admin, shop.market_id), transports=("polling",))
    buyer_a = LiveClient(a.url, "/orders", {"token": buyer.token})
    buyer_b = LiveClient(b.url, "/orders", {"token": buyer.token})
    others = [
        LiveClient(a.url, "/dashboard", dashboard_auth(other.admin, other.market_id)),
        LiveClient(b.url, "/dashboard", dashboard_auth(other.admin, other.market_id)),
        LiveClient(a.url, "/orders", {"token": bystander.token}),
        LiveClient(b.url, "/orders", {"token": bystander.token}),
        LiveClient(b.url, "/orders", {"token": shop.admin.token}),
    ]
    everyone = [dashboard_b, dashboard_a, buyer_a, buyer_b, *others]
    await asyncio.gather(*(client.connect() for client in everyone))

    order = await shop.place_order(buyer)
    await shop.move(order["id"], "confirmed", http=session_for(b, sessions))  # and one made on B
    for client in (dashboard_b, dashboard_a, buyer_a, buyer_b):
        await client.wait(lambda c=client: len(c.events()) == 2)  # type: ignore[misc]
        assert client.order_ids() == [order["id"]] * 2
        assert [name for name, _, _ in client.received if name != "stats"] == ["order:created", "order:updated"]
        assert client.seqs() == [1, 2]
    assert {e["stream"] for e in dashboard_b.events()} == {f"market:{shop.market_id}"}
    assert {e["stream"] for e in buyer_b.events()} == {f"user:{buyer.id}"}

    await asyncio.sleep(0.5)  # time for a wrongly routed event to arrive
    for client in others:
        assert client.events() == [], client.summary()
        assert all(stats["market_id"] == other.market_id for stats in client.events("stats"))
    await asyncio.gather(*(client.close() for client in everyone))


async def test_stats_follow_changes_on_another_instance_coalesced(
    hubs: HubFleet,
    db_name: str,
    sessions: list[aiohttp.ClientSession],
) -> None:
    a, b = await start_pair(hubs, db_name, SHARED_REDIS)
    http_a = session_for(a, sessions)
    shop = await open_shop(http_a)
    customer = shop.customers[0]
    dashboard = LiveClient(b.url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    await dashboard.connect()
    await dashboard.wait(lambda: len(dashboard.events("stats")) == 1)
    assert dashboard.events("stats")[0]["orders_total"] == 0

    def arrival_of_total(total: int) -> float | None:
        times = [at for name, data, at in dashboard.received if name == "stats" and data["orders_total"] == total]
        return times[0] if times else None

    await shop.place_order(customer)
    placed = time.monotonic()
    await dashboard.wait(lambda: arrival_of_total(1) is not None, timeout=5)
    assert arrival_of_total(1) - placed < 1.0  # type: ignore[operator]

    burst_start = time.monotonic()
    gate = asyncio.Semaphore(8)

    async def one() -> None:
        async with gate:
            await shop.place_order(customer)

    await asyncio.gather(*(one() for _ in range(100)))
    burst_end = time.monotonic()
    await dashboard.wait(lambda: arrival_of_total(101) is not None, timeout=5)
    assert arrival_of_total(101) - burst_end < 1.0  # type: ignore[operator]

    pushes = [data for name, data, at in dashboard.received if name == "stats" and at >= burst_start]
    moments = sorted(datetime.fromisoformat(data["at"]).timestamp() for data in pushes)
    # At most 4 a second: any 5 consecutive pushes span at least a second (server clock, ms precision).
    for first, fifth in zip(moments, moments[4:], strict=False):
        assert fifth - first >= 0.99, moments
    assert 2 <= len(pushes) <= (burst_end - burst_start + 1) * 4 + 1
    totals = [data["orders_total"] for data in pushes]
    assert totals == sorted(totals) and totals[-1] == 101
    await dashboard.close()


async def test_redis_outage_rest_keeps_working_and_dashboards_recover_every_event(
    hubs: HubFleet,
    db_name: str,
    private_redis: RedisServer,
    sessions: list[aiohttp.ClientSession],
) -> None:
    a, b = await start_pair(hubs, db_name, private_redis.url)
    http_a = session_for(a, sessions)
    shop = await open_shop(http_a)
    customer = shop.customers[0]
    stream = f"market:{shop.market_id}"
    dashboard = LiveClient(b.url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    await dashboard.connect()
    placed = [await shop.place_order(customer) for _ in range(2)]
    await dashboard.wait(lambda: dashboard.seqs() == [1, 2])

    await asyncio.to_thread(private_redis.stop)
    placed += [await shop.place_order(customer) for _ in range(3)]  # each asserts 201
    await asyncio.to_thread(private_redis.start)

    def delivered_up_to(seq: int) -> Callable[[], bool]:
        return lambda: max(dashboard.seqs()) >= seq

    # Keep ordering until B delivers live again (it resubscribes with a back-off).
    deadline = time.monotonic() + 40
    while not any(seq > 5 for seq in dashboard.seqs()):
        assert time.monotonic() < deadline, dashboard.summary()
        placed.append(await shop.place_order(customer))
        await dashboard.wait(delivered_up_to(len(placed)), timeout=0.7, fail=False)

    live = dashboard.seqs()
    assert len(live) == len(set(live)), live  # nothing delivered twice
    assert 3 not in live  # published while Redis was down: not live, only in the history
    # The client sees the gap after 2 and asks for what it missed.
    gap_from = next(prev for prev, seq in itertools.pairwise(live) if seq != prev + 1)
    replayed = await dashboard.call("replay", {"stream": stream, "since": gap_from})
    applied = [seq for seq in live if seq <= gap_from]
    for event in replayed:
        if event["seq"] > applied[-1]:
            applied.append(event["seq"])
    applied += [seq for seq in live if seq > applied[-1]]
    assert applied == list(range(1, len(placed) + 1)), (live, [event["seq"] for event in replayed])
    ids_by_seq = {event["seq"]: event["order"]["id"] for event in [*dashboard.events(), *replayed]}
    assert [ids_by_seq[seq] for seq in applied] == [order["id"] for order in placed]
    await dashboard.close()


async def test_an_event_published_from_outside_reaches_every_instance_and_the_history(
    hubs: HubFleet,
    db_name: str,
    nx_server: object,
    sessions: list[aiohttp.ClientSession],
) -> None:
    a, b = await start_pair(hubs, db_name, SHARED_REDIS)
    http_a = session_for(a, sessions)
    shop = await open_shop(http_a)
    customer = shop.customers[0]
    dashboard_b = LiveClient(b.url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    feed_a = LiveClient(a.url, "/orders", {"token": customer.token})
    await asyncio.gather(dashboard_b.connect(), feed_a.connect())
    order = await shop.place_order(customer)
    await dashboard_b.wait(lambda: dashboard_b.seqs() == [1])

    outside = Settings(mongodb_url=a.env["MONGODB_URL"], mongodb_db=db_name, secret_key=TEST_SECRET,
                       redis_url=SHARED_REDIS, redis_channel=a.env["REDIS_CHANNEL"])  # fmt: skip
    changed = Order.model_validate({**order, "status": "confirmed", "version": order["version"] + 1})
    await publish_order_event(outside, changed, previous_status=OrderStatus.PENDING)

    await dashboard_b.wait(lambda: dashboard_b.seqs() == [1, 2])
    await feed_a.wait(lambda: feed_a.seqs() == [1, 2])
    event = dashboard_b.events()[1]
    assert event["previous_status"] == "pending" and event["order"]["status"] == "confirmed"
    assert event["stream"] == f"market:{shop.market_id}"
    replayed = await dashboard_b.call("replay", {"stream": f"market:{shop.market_id}", "since": 1})
    assert [(e["event"], e["seq"], e["order"]["id"]) for e in replayed] == [("order:updated", 2, order["id"])]
    # and the next event of the hub itself continues the same sequence
    await shop.place_order(customer)
    await dashboard_b.wait(lambda: dashboard_b.seqs() == [1, 2, 3])
    await asyncio.gather(dashboard_b.close(), feed_a.close())
