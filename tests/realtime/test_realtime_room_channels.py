"""Per-room Redis channels (hub/realtime/room_channels.py): an instance hears a market's events only
while it has dashboards of that market, on one Redis and on a Redis Cluster of three masters; a
dashboard joining while its instance subscribes still gets every event exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.cluster import RedisCluster

from hub.app import create_app
from hub.keys import socketio_key
from hub.realtime.redis_manager import HubRedisManager
from hub.realtime.revocation import Revocations
from hub.realtime.room_channels import NodeLink, RoomChannels
from hub.settings import Settings
from tests.helpers.api import read_metric, server_url
from tests.helpers.redis_cluster import RedisClusterProcesses, redis_cluster  # noqa: F401 - the fixture
from tests.helpers.socket_clients import LiveClient, dashboard_auth, open_shop

SHARED_REDIS = "redis://127.0.0.1:6379/0"
ROOM_MESSAGES = "hub_redis_room_channel_messages_total"


def manager_of(hub: TestClient) -> HubRedisManager:
    manager = hub.app[socketio_key].manager
    assert isinstance(manager, HubRedisManager)
    return manager


class Fleet:
    """Hub instances in this process on one database and one Redis channel of their own."""

    def __init__(self, make_settings: Callable[..., Settings], redis_url: str) -> None:
        self.make_settings = make_settings
        self.redis_url = redis_url
        self.channel = f"test-{uuid.uuid4().hex[:12]}"
        self.hubs: list[TestClient] = []

    async def start(self, count: int) -> list[TestClient]:
        for _ in range(count):
            settings = self.make_settings(redis_url=self.redis_url, redis_channel=self.channel)
            hub = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
            await hub.start_server()
            self.hubs.append(hub)
        return self.hubs

    async def close(self) -> None:
        for hub in self.hubs:
            await hub.close()


@pytest.fixture
async def fleets(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[[str], Fleet]]:
    made: list[Fleet] = []

    def make(redis_url: str) -> Fleet:
        made.append(Fleet(make_settings, redis_url))
        return made[-1]

    yield make
    for fleet in made:
        await fleet.close()


async def subscribers(redis_url: str, channel: str) -> int:
    """PUBSUB SHARDNUMSUB, asked of the node that owns the channel's slot."""
    probe = aioredis.Redis.from_url(redis_url)
    try:
        if (await probe.info("cluster")).get("cluster_enabled"):
            cluster = RedisCluster.from_url(redis_url)
            await cluster.initialize()
            node = cluster.get_node_from_key(channel)
            await cluster.aclose()
            assert node is not None
            await probe.aclose()
            probe = aioredis.Redis(host=node.host, port=node.port)
        reply = await probe.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return int(reply[1])
    finally:
        await probe.aclose()


async def eventually(check: Callable[[], Any], timeout: float = 10) -> None:
    """For states with no event to await (a SUNSUBSCRIBE Redis applied): poll, bounded."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def room_messages(hubs: list[TestClient]) -> list[float]:
    return [await read_metric(hub, ROOM_MESSAGES) for hub in hubs]


async def check_routing(fleet: Fleet) -> None:
    one, two, three = await fleet.start(3)
    shop = await open_shop(one)  # market M
    other = await open_shop(one)  # its dashboards are on instance 3: the barrier
    customer, other_customer = shop.customers[0], other.customers[0]
    m_channel = manager_of(one).room_channel("/dashboard", f"market:{shop.market_id}")

    on_one = [LiveClient(server_url(one), "/dashboard", dashboard_auth(shop.admin, shop.market_id)) for _ in range(2)]
    barrier = LiveClient(server_url(three), "/dashboard", dashboard_auth(other.admin, other.market_id))
    await asyncio.gather(*(client.connect() for client in [*on_one, barrier]))
    assert await subscribers(fleet.redis_url, m_channel) == 1  # instance 1's connection only
    before = await room_messages([one, two, three])

    await shop.place_order(customer, http=two)  # published by instance 2, which has no dashboard of M
    for client in on_one:
        await client.wait(lambda client=client: client.seqs() == [1])  # type: ignore[misc]
    # Redis delivers one connection's messages in order: once instance 3 has the later event of the
    # other market, it would have had M's, were it subscribed.
    await other.place_order(other_customer, http=two)
    await barrier.wait(lambda: barrier.seqs() == [1])
    after = await room_messages([one, two, three])
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 0, 1]  # M's only on 1; the barrier on 3

    late = LiveClient(server_url(three), "/dashboard", dashboard_auth(shop.admin, shop.market_id, since={}))
    await late.connect()
    assert await subscribers(fleet.redis_url, m_channel) == 2  # instance 3 subscribed with its first dashboard
    await shop.place_order(customer, http=two)
    for client in [*on_one, late]:
        await client.wait(lambda client=client: 2 in client.seqs())  # type: ignore[misc]
    assert late.seqs() == [2]

    await late.close()  # instance 3's last dashboard of M: it unsubscribes
    await eventually(lambda: _equals(subscribers(fleet.redis_url, m_channel), 1))
    await asyncio.gather(*(client.close() for client in [*on_one, barrier]))


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def test_a_market_is_heard_only_where_its_dashboards_are(fleets: Callable[[str], Fleet]) -> None:
    await check_routing(fleets(SHARED_REDIS))


@pytest.mark.slow
async def test_the_same_on_a_redis_cluster_of_three_masters(
    fleets: Callable[[str], Fleet],
    redis_cluster: RedisClusterProcesses,  # noqa: F811 - the fixture
) -> None:
    await check_routing(fleets(redis_cluster.url))


async def test_account_rooms_have_no_channel_and_revocations_still_reach_every_instance(
    fleets: Callable[[str], Fleet],
) -> None:
    """Every connection is in its user's account room, which only a revocation uses: it travels on
    the shared channel, so a connection subscribes its stream's channel and nothing more."""
    one, two = await fleets(SHARED_REDIS).start(2)
    shop = await open_shop(one)
    dashboard = LiveClient(server_url(one), "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    await dashboard.connect()
    manager = manager_of(one)
    assert manager.room_channels is not None
    assert manager.room_channels.subscribed == {manager.room_channel("/dashboard", f"market:{shop.market_id}")}

    await Revocations(two.app[socketio_key]).revoke_user(shop.admin.id, "deactivated")
    await asyncio.wait_for(dashboard.disconnected.wait(), 10)
    assert dashboard.events("auth:revoked") == [{"reason": "deactivated"}]


async def test_a_dashboard_joining_while_its_instance_subscribes_gets_every_event_once(
    fleets: Callable[[str], Fleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events published between the join and the subscription's confirmation come from the history;
    events after it, live; none twice, none lost."""
    publisher, joiner = await fleets(SHARED_REDIS).start(2)
    shop = await open_shop(publisher)
    customer = shop.customers[0]
    await shop.place_order(customer, http=publisher)  # seq 1: before the join; the client has it
    channels = manager_of(joiner).room_channels
    assert channels is not None
    gate, subscribing = asyncio.Event(), asyncio.Event()
    link_for = channels._link_for

    async def held_link_for(channel: str) -> NodeLink:
        subscribing.set()
        await gate.wait()
        return await link_for(channel)

    monkeypatch.setattr(channels, "_link_for", held_link_for)
    dashboard = LiveClient(server_url(joiner), "/dashboard", dashboard_auth(shop.admin, shop.market_id, since={}))
    dashboard.auth["since"] = {f"market:{shop.market_id}": 1}  # type: ignore[index]
    connecting = asyncio.create_task(dashboard.connect())
    await asyncio.wait_for(subscribing.wait(), 10)
    for _ in range(3):  # seq 2-4: the joiner is not subscribed yet, so it does not hear them
        await shop.place_order(customer, http=publisher)
    assert not connecting.done()  # the join waits for the subscription
    gate.set()
    await asyncio.wait_for(connecting, 15)
    await shop.place_order(customer, http=publisher)  # seq 5: live
    await dashboard.wait(lambda: 5 in dashboard.seqs())
    assert dashboard.seqs() == [2, 3, 4, 5]
    await dashboard.close()


async def test_room_channels_follow_members_without_redis_round_trips_for_churn() -> None:
    """want/drop are bookkeeping; the worker sends what the wanted set asks for once it runs."""
    received: list[bytes] = []
    channels = RoomChannels(SHARED_REDIS, redis_options={}, on_message=received.append)
    name = f"test-{uuid.uuid4().hex[:12]}#/dashboard#market:x#"
    try:
        channels.want(name)
        channels.drop(name)
        channels.want(name)
        assert await channels.ready(name, 10)
        assert await subscribers(SHARED_REDIS, name) == 1
        assert await channels.publish(name, "hello") == 1
        await eventually(lambda: _true(received == [b"hello"]))
        channels.drop(name)
        await eventually(lambda: _equals(subscribers(SHARED_REDIS, name), 0))
        assert channels.subscribed == set()
    finally:
        await channels.close()


async def _true(value: bool) -> bool:
    return value
