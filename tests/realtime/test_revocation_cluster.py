"""A user deactivated, given another role, or whose market is deleted loses their open Socket.IO
connections within 1 s on every instance: two hub processes sharing Redis, the change made on A,
the connections on B (and on A)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest

from hub.__main__ import create_admin
from hub.settings import Settings
from tests.helpers.api import PASSWORD, TEST_SECRET, sign_in, sign_up, unique_email
from tests.helpers.processes import HubFleet
from tests.helpers.socket_clients import LiveClient, open_shop

SHARED_REDIS = "redis://127.0.0.1:6379/0"
LIMITS = {"rate_limit_per_minute": "100000", "rate_limit_per_hour": "1000000"}
WITHIN_SECONDS = 1.0

pytestmark = pytest.mark.slow


async def revoked_within(clients: list[LiveClient], answered_at: float, reason: str) -> None:
    for client in clients:
        await client.wait(client.disconnected.is_set, timeout=10)
        assert client.disconnected_at is not None
        assert client.disconnected_at - answered_at < WITHIN_SECONDS, client.disconnected_at - answered_at
        assert [data for name, data, _ in client.received if name == "auth:revoked"] == [{"reason": reason}]


async def test_revocations_reach_every_instance_within_a_second(hubs: HubFleet, db_name: str) -> None:
    channel = f"test-{uuid.uuid4().hex[:12]}"
    a, b = await asyncio.gather(*(
        asyncio.to_thread(hubs.start, db_name=db_name, redis_url=SHARED_REDIS, redis_channel=channel, **LIMITS)
        for _ in range(2)
    ))  # fmt: skip
    async with aiohttp.ClientSession(base_url=a.url) as http_a:
        await _revocations(a.url, b.url, http_a, hubs.mongo_url, db_name)


async def _revocations(a_url: str, b_url: str, http_a: aiohttp.ClientSession, mongo_url: str, db_name: str) -> None:
    shop = await open_shop(http_a, customers=2)
    customer, bystander = shop.customers
    admin_email = unique_email("root")
    settings = Settings(mongodb_url=mongo_url, mongodb_db=db_name, secret_key=TEST_SECRET, redis_url=None)
    await create_admin(settings, admin_email, PASSWORD, "Root")
    root = await sign_in(http_a, admin_email)

    async def patch(path: str, body: dict[str, object] | None, method: str = "PATCH") -> float:
        headers = root.headers if method == "PATCH" else shop.admin.headers
        response = await http_a.request(method, f"/api/v1{path}", json=body, headers=headers)
        assert response.status in (200, 204), await response.text()
        return time.monotonic()

    customer_b = LiveClient(b_url, "/orders", {"token": customer.token})
    customer_a = LiveClient(a_url, "/orders", {"token": customer.token})
    dashboard_b = LiveClient(b_url, "/dashboard", {"token": shop.admin.token})
    others = [LiveClient(b_url, "/orders", {"token": bystander.token}),
              LiveClient(b_url, "/orders", {"token": shop.admin.token})]  # fmt: skip
    for client in (customer_b, customer_a, dashboard_b, *others):
        await client.connect()

    answered = await patch(f"/users/{customer.id}", {"is_active": False})
    await revoked_within([customer_b, customer_a], answered, "deactivated")
    assert await LiveClient(b_url, "/orders", {"token": customer.token}).refused_with() == {"message": "unauthorized"}

    answered = await patch(f"/users/{shop.admin.id}", {"role": "customer"})
    await revoked_within([dashboard_b, others[1]], answered, "role_changed")
    await patch(f"/users/{shop.admin.id}", {"role": "market_admin"})

    dashboard_b = LiveClient(b_url, "/dashboard", {"token": shop.admin.token})
    await dashboard_b.connect()
    answered = await patch(f"/markets/{shop.market_id}", None, method="DELETE")
    await revoked_within([dashboard_b], answered, "market_deleted")
    assert await LiveClient(b_url, "/dashboard", {"token": shop.admin.token}).refused_with() == {"message": "forbidden"}

    # Barrier: the bystander's connection on B answers after all of that, never told to go.
    assert await others[0].call("track", {"order_id": "0" * 24}) == {"error": {"code": "NOT_FOUND"}}
    assert not others[0].disconnected.is_set()
    assert others[0].received == []
    fresh = await sign_up(http_a)  # the hub still admits newcomers
    newcomer = LiveClient(b_url, "/orders", {"token": fresh.token})
    await newcomer.connect()
    for client in (others[0], newcomer):
        await client.close()
