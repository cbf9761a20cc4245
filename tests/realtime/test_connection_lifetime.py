"""A Socket.IO connection lives no longer than its token (DESIGN.md, Realtime): `auth:expired` and a
disconnect at `exp`, unless `auth:refresh` brought a fresh token of the same user. Tokens here are
issued with the test's own key and a lifetime of seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from auth.tokens import TokenIssuer
from tests.helpers.api import TEST_SECRET, sign_up
from tests.helpers.socket_clients import LiveClient, open_shop

LIFETIME = timedelta(seconds=4)


def issuer(lifetime: timedelta) -> TokenIssuer:
    return TokenIssuer(TEST_SECRET, "HS256", lifetime)


def names(client: LiveClient) -> list[str]:
    return [name for name, _, _ in client.received]


async def test_a_connection_ends_at_exp_unless_refreshed(client: TestClient) -> None:
    url = str(client.make_url("")).rstrip("/")
    shop = await open_shop(client)
    customer = shop.customers[0]
    stranger = await sign_up(client)
    issued = datetime.now(UTC)
    short = issuer(LIFETIME).issue(customer.id, "customer", now=issued)
    plain = LiveClient(url, "/orders", {"token": short})
    refreshed = LiveClient(url, "/orders", {"token": short})
    dashboard = LiveClient(url, "/dashboard", {"token": issuer(LIFETIME).issue(shop.admin.id, "market_admin",
                                                                               now=issued)})  # fmt: skip
    for live in (plain, refreshed, dashboard):
        await live.connect()

    # Refusals: not a token, another user's token, no token at all. The connection stays.
    assert await refreshed.call("auth:refresh", {"token": "not-a-token"}) == {"error": {"code": "UNAUTHORIZED"}}
    assert await refreshed.call("auth:refresh", {"token": stranger.token}) == {"error": {"code": "FORBIDDEN"}}
    assert await refreshed.call("auth:refresh", {}) == {"error": {"code": "VALIDATION_ERROR"}}
    fresh = issuer(timedelta(minutes=5)).issue(customer.id, "customer")
    ack = await refreshed.call("auth:refresh", {"token": fresh})
    assert ack["ok"] is True
    assert datetime.fromisoformat(ack["expires_at"]) > issued + timedelta(minutes=4)

    # The others end at exp, told why first.
    for live in (plain, dashboard):
        await live.wait(live.disconnected.is_set, timeout=LIFETIME.total_seconds() + 10)
        assert "auth:expired" in names(live), live.summary()
        assert live.disconnected_at is not None
    # Barrier: the refreshed connection's first exp has passed too (same token); it still answers.
    order = await shop.place_order(customer)
    assert (await refreshed.call("track", {"order_id": order["id"]}))["id"] == order["id"]
    assert not refreshed.disconnected.is_set()
    assert "auth:expired" not in names(refreshed)
    await refreshed.close()
