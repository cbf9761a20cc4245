"""Webhooks (DESIGN.md, Webhooks): endpoints, signed deliveries verified with the `standardwebhooks`
reference verifier, retries, the lease between instances, secret rotation, the delivery log, and
who may see what. Receivers are real HTTP servers on 127.0.0.1 (WEBHOOK_ALLOW_INSECURE=1); the
address checks themselves are tested on address values and never connect anywhere."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hub.app import create_app
from hub.keys import order_follow_up_key, order_sweeper_key, store_key
from hub.logs import configure_logging
from hub.metrics import HubMetrics
from hub.settings import Settings
from hub.webhooks.schedule import RetrySchedule
from hub.webhooks.sender import WebhookSender
from hub.webhooks.signing import new_secret
from store.client import connect
from store.codec import epoch_ms, new_id, now
from store.database import Store
from store.embedded import free_port
from store.webhooks import WebhookDelivery, delivery_id
from tests.api.test_notices import Inbox
from tests.helpers.api import Account, read_metric, sign_up
from tests.helpers.socket_clients import LiveClient, Shop, dashboard_auth, open_shop
from tests.helpers.webhook_receiver import HANG, Received, receiving

# A day of retries in 86 s; every retry delay a few milliseconds.
FAST_RETRIES = {"webhook_allow_insecure": True, "webhook_retry_scale": 0.001}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST_RETRIES)


async def register(client: TestClient, owner: Account, market_id: str, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "events": ["order.created", "order.updated"], **fields}
    response = await client.post(f"/api/v1/markets/{market_id}/webhooks", json=body, headers=owner.headers)
    assert response.status == 201, await response.text()
    return dict(await response.json())


def verified(received: Received, secret: str) -> dict[str, Any]:
    """The body, verified by the Standard Webhooks reference implementation."""
    return dict(Webhook(secret).verify(received.body, received.headers))


async def deliveries(client: TestClient, owner: Account, hook_id: str, query: str = "") -> tuple[list[Any], int]:
    response = await client.get(f"/api/v1/webhooks/{hook_id}/deliveries{query}", headers=owner.headers)
    assert response.status == 200, await response.text()
    return list(await response.json()), int(response.headers["X-Total-Count"])


async def wait_log(
    client: TestClient, owner: Account, hook_id: str, done: Callable[[list[Any]], bool], *, timeout: float = 15
) -> list[Any]:
    """The delivery log once `done` holds (the sender records an outcome just after the receiver answers)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        log, _ = await deliveries(client, owner, hook_id)
        if done(log):
            return log
        await asyncio.sleep(0.05)
    raise AssertionError(f"delivery log never got there within {timeout}s: {log}")


async def test_order_events_arrive_signed_in_order_with_the_market_streams_seq(client: TestClient) -> None:
    shop = await open_shop(client)
    dashboard = LiveClient(
        str(client.make_url("")).rstrip("/"), "/dashboard", dashboard_auth(shop.admin, shop.market_id)
    )
    await dashboard.connect()
    try:
        async with receiving() as receiver:
            hook = await register(client, shop.admin, shop.market_id, receiver.url, description="POS")
            assert hook["secret"].startswith("whsec_")
            order = await shop.place_order(shop.customers[0])
            await shop.move(order["id"], "confirmed")
            await shop.move(order["id"], "preparing")
            received = await receiver.count(3)
            await dashboard.wait(lambda: len(dashboard.events()) >= 3)
            bodies = [verified(item, hook["secret"]) for item in received]
            assert [body["type"] for body in bodies] == ["order.created", "order.updated", "order.updated"]
            assert [body["data"]["order"]["status"] for body in bodies] == ["pending", "confirmed", "preparing"]
            assert [body["data"].get("previous_status") for body in bodies] == [None, "pending", "confirmed"]
            stream = f"market:{shop.market_id}"
            assert [body["data"]["stream"] for body in bodies] == [stream] * 3
            assert [body["data"]["seq"] for body in bodies] == dashboard.seqs(stream)
            assert all(body["timestamp"].endswith("Z") for body in bodies)
            assert all(item.headers["content-type"] == "application/json" for item in received)
            assert len({item.webhook_id for item in received}) == 3
            log = await wait_log(
                client, shop.admin, hook["id"], lambda log: all(d["status"] == "delivered" for d in log)
            )
            assert {d["id"] for d in log} == {item.webhook_id for item in received}
            assert await read_metric(client, "hub_webhook_deliveries_total", outcome="delivered") == 3
            assert await read_metric(client, "hub_webhook_lag_seconds_count") == 3
    finally:
        await dashboard.close()


async def test_a_failing_receiver_gets_the_same_webhook_id_until_it_answers_2xx(client: TestClient) -> None:
    shop = await open_shop(client)
    # 500, then a redirect (not followed: a failed attempt, retried later), then 200.
    async with receiving(lambda number: {1: 500, 2: 307}.get(number, 200)) as receiver:
        hook = await register(client, shop.admin, shop.market_id, receiver.url, events=["order.created"])
        order = await shop.place_order(shop.customers[0])
        received = await receiver.count(3)
        assert len({item.webhook_id for item in received}) == 1
        bodies = [verified(item, hook["secret"]) for item in received]
        assert {body["data"]["order"]["id"] for body in bodies} == {order["id"]}
        log = await wait_log(client, shop.admin, hook["id"], lambda log: log and log[0]["status"] == "delivered")
        assert len(log) == 1
        assert log[0]["id"] == received[0].webhook_id
        assert (log[0]["attempts"], log[0]["last_status_code"], log[0]["event"]) == (3, 200, "order.created")
        assert log[0]["delivered_at"] is not None
        assert await read_metric(client, "hub_webhook_deliveries_total", outcome="retry") == 2
        assert await read_metric(client, "hub_webhook_attempts_total") == 3
        assert len(receiver.received) == 3  # the redirect was not followed


async def test_a_receiver_that_never_answers_is_retried_then_failed_and_turned_off(
    aiohttp_client: Callable[..., Awaitable[TestClient]], make_settings: Callable[..., Settings]
) -> None:
    # The 10 s answer window is not scaled: a horizon of 15 s leaves room for exactly two attempts.
    scale = 15 / 86400
    mailbox = Inbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    settings = make_settings(webhook_allow_insecure=True, webhook_retry_scale=scale,
                             email_service_url=f"smtp://127.0.0.1:{smtp.port}")  # fmt: skip
    try:
        await _never_answers(await aiohttp_client(create_app(settings)), mailbox)
    finally:
        smtp.stop()


async def _never_answers(client: TestClient, mailbox: Inbox) -> None:
    shop = await open_shop(client)
    async with receiving(lambda _: HANG) as receiver:
        hook = await register(client, shop.admin, shop.market_id, receiver.url)
        await shop.place_order(shop.customers[0])
        log = await wait_log(
            client, shop.admin, hook["id"], lambda log: log and log[0]["status"] == "failed", timeout=40
        )
        assert len(receiver.received) == 2
        assert len({item.webhook_id for item in receiver.received}) == 1
        assert log[0]["attempts"] == 2
        assert "no answer within 10 s" in log[0]["last_error"]
        assert log[0]["next_attempt_at"] is None
        # Every delivery of the endpoint failed for the whole horizon: it is turned off, the market told.
        subject = f"A webhook endpoint of {shop.market['name']} was turned off"
        for _ in range(100):
            response = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=shop.admin.headers)
            if not (await response.json())["is_active"] and any(m["Subject"] == subject for m in mailbox.messages):
                break
            await asyncio.sleep(0.05)
        assert (await response.json())["is_active"] is False
        (notice,) = [message for message in mailbox.to(shop.market["contact_email"]) if message["Subject"] == subject]
        assert receiver.url in notice.get_content()


async def test_two_instances_never_send_the_same_delivery_at_once(
    aiohttp_client: Callable[..., Awaitable[TestClient]], app: web.Application, settings: Settings
) -> None:
    first = await aiohttp_client(app)
    second = await aiohttp_client(create_app(settings))  # the same database, its own sender
    shop = await open_shop(first)
    # Every delivery fails once then succeeds slowly: its retry is up for grabs by both senders.
    async with receiving(lambda number: 503 if number == 1 else 200, delay=0.3) as receiver:
        await register(first, shop.admin, shop.market_id, receiver.url, events=["order.created"])
        for index in range(6):
            await shop.place_order(shop.customers[0], http=(first, second)[index % 2])
        received = await receiver.count(12, timeout=20)
        await asyncio.sleep(0)
        per_id: dict[str, int] = {}
        for item in received:
            per_id[item.webhook_id] = per_id.get(item.webhook_id, 0) + 1
        assert sorted(per_id.values()) == [2] * 6
        assert max(item.open_for_id for item in received) == 1


async def test_after_a_rotation_both_secrets_sign_for_a_day_then_only_the_new_one(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings
) -> None:
    class MovedClock:
        offset = timedelta(0)

        def now(self) -> datetime:
            return now() + self.offset

    clock = MovedClock()
    client = await aiohttp_client(create_app(settings, webhook_clock=clock))
    shop = await open_shop(client)
    async with receiving() as receiver:
        hook = await register(client, shop.admin, shop.market_id, receiver.url)
        old = hook["secret"]
        response = await client.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=shop.admin.headers)
        assert response.status == 200, await response.text()
        new = (await response.json())["secret"]
        assert new.startswith("whsec_") and new != old
        order = await shop.place_order(shop.customers[0])
        (during,) = await receiver.count(1)
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        assert verified(during, old) == verified(during, new)

        clock.offset = timedelta(hours=24, seconds=1)
        await shop.move(order["id"], "confirmed")
        after = (await receiver.count(2))[1]
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        assert verified(after, new)["type"] == "order.updated"
        with pytest.raises(WebhookVerificationError):
            verified(after, old)
        # The secret is never shown again.
        response = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=shop.admin.headers)
        assert "secret" not in await response.json()


async def test_deliveries_survive_a_writer_that_died_before_making_them(
    client: TestClient, app: web.Application
) -> None:
    shop = await open_shop(client)
    follow_up, sweeper = app[order_follow_up_key], app[order_sweeper_key]

    class Dying:
        async def create_for(self, order: Any) -> int:
            raise RuntimeError("killed after publishing, before the deliveries")

    async with receiving() as receiver:
        await register(client, shop.admin, shop.market_id, receiver.url, events=["order.created"])
        made_by = follow_up.webhook_deliveries
        follow_up.webhook_deliveries = Dying()
        order = await shop.place_order(shop.customers[0])
        follow_up.webhook_deliveries = made_by
        collection = app[store_key].orders.collection
        assert (await collection.find_one({"_id": order["id"]}))["outbox"], "the outbox keeps the event"
        await collection.update_many({"outbox_ms": {"$exists": True}}, {"$inc": {"outbox_ms": -60_000}})
        assert await sweeper.publish_unpublished() == 1
        assert await sweeper.publish_unpublished(older_than=timedelta(0)) == 0  # nothing left: made once
        (item,) = await receiver.count(1)
        assert item.json()["data"]["order"]["id"] == order["id"]
        assert await app[store_key].webhook_deliveries.collection.count_documents({}) == 1


async def test_endpoints_crud_the_secret_once_and_the_limit(client: TestClient) -> None:
    shop = await open_shop(client)
    base = f"/api/v1/markets/{shop.market_id}/webhooks"
    hook = await register(client, shop.admin, shop.market_id, "http://127.0.0.1:9/a", description="Accounting")
    assert set(hook) == {"id", "market_id", "url", "events", "description", "is_active", "secret", "created_at"}
    response = await client.get(base, headers=shop.admin.headers)
    listed = await response.json()
    assert response.headers["X-Total-Count"] == "1" and "secret" not in listed[0]
    change = {"events": ["order.updated"], "is_active": False, "description": None}
    response = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=shop.admin.headers, json=change)
    changed = await response.json()
    assert (changed["events"], changed["is_active"], changed["description"]) == (["order.updated"], False, "")
    for body in ({"url": "http://127.0.0.1:9/b", "events": []}, {"url": "http://127.0.0.1:9/b", "events": ["x"]},
                 {"url": "http://127.0.0.1:9/b", "events": ["order.created"], "secret": "mine"}):  # fmt: skip
        response = await client.post(base, json=body, headers=shop.admin.headers)
        assert response.status == 422, await response.text()
    response = await client.patch(f"/api/v1/webhooks/{hook['id']}", json={"is_active": 1}, headers=shop.admin.headers)
    assert response.status == 422
    for index in range(9):
        await register(client, shop.admin, shop.market_id, f"http://127.0.0.1:9/{index}")
    response = await client.post(base, json={"url": "http://127.0.0.1:9/z", "events": ["order.created"]},
                                 headers=shop.admin.headers)  # fmt: skip
    assert response.status == 409
    response = await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=shop.admin.headers)
    assert response.status == 204
    response = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=shop.admin.headers)
    assert response.status == 404


async def test_the_delivery_log_filters_pages_and_retries_with_the_same_id(client: TestClient) -> None:
    shop = await open_shop(client)
    async with receiving() as receiver:
        hook = await register(client, shop.admin, shop.market_id, receiver.url, events=["order.created"])
        for _ in range(3):
            await shop.place_order(shop.customers[0])
        await receiver.count(3)
        await wait_log(client, shop.admin, hook["id"], lambda log: [d["status"] for d in log] == ["delivered"] * 3)
        page, total = await deliveries(client, shop.admin, hook["id"], "?status=delivered&skip=1&limit=1")
        assert (len(page), total) == (1, 3)
        assert (await deliveries(client, shop.admin, hook["id"], "?status=failed"))[1] == 0
        response = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries?status=lost", headers=shop.admin.headers)
        assert response.status == 422
        newest = (await deliveries(client, shop.admin, hook["id"]))[0][0]
        response = await client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{newest['id']}/retry",
                                     headers=shop.admin.headers)  # fmt: skip
        assert response.status == 202, await response.text()
        again = (await receiver.count(4))[3]
        assert again.webhook_id == newest["id"]
        verified(again, hook["secret"])


async def test_no_one_but_the_owner_and_super_admin_sees_a_markets_webhooks(
    client: TestClient, settings: Settings
) -> None:
    from tests.helpers.api import make_super_admin

    shop = await open_shop(client)
    hook = await register(client, shop.admin, shop.market_id, "http://127.0.0.1:9/hook")
    other = await open_shop(client)
    outsiders = [other.admin, shop.customers[0], await sign_up(client, "customer")]
    base, one = f"/api/v1/markets/{shop.market_id}/webhooks", f"/api/v1/webhooks/{hook['id']}"
    delivery = f"{one}/deliveries/{'0' * 24}/retry"
    routes = [("POST", base, {"url": "http://127.0.0.1:9/x", "events": ["order.created"]}), ("GET", base, None),
              ("GET", one, None), ("PATCH", one, {"description": "mine now"}), ("DELETE", one, None),
              ("POST", f"{one}/rotate-secret", None), ("GET", f"{one}/deliveries", None),
              ("POST", delivery, None)]  # fmt: skip
    for outsider in outsiders:
        for method, path, body in routes:
            response = await client.request(method, path, json=body, headers=outsider.headers)
            assert response.status == 404, (outsider.role, method, path, response.status)
    for method, path, body in routes:
        response = await client.request(method, path, json=body)
        assert response.status == 401, (method, path)
    admin = await make_super_admin(settings, client)
    response = await client.get(one, headers=admin.headers)
    assert response.status == 200
    assert (await response.json())["description"] == ""


async def test_ssrf_registration_refuses_http_and_non_public_addresses(
    aiohttp_client: Callable[..., Awaitable[TestClient]], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings()))  # WEBHOOK_ALLOW_INSECURE unset
    shop: Shop = await open_shop(client)
    refused = ["http://example.com/hook", "https://127.0.0.1/hook", "https://[::1]/hook", "https://localhost/hook",
               "https://10.1.2.3/hook", "https://169.254.169.254/latest", "https://[::ffff:127.0.0.1]/",
               "https://2130706433/", "https://user:pw@example.com/", "ftp://example.com/"]  # fmt: skip
    for url in refused:
        response = await client.post(f"/api/v1/markets/{shop.market_id}/webhooks", headers=shop.admin.headers,
                                     json={"url": url, "events": ["order.created"]})  # fmt: skip
        assert response.status == 422, (url, await response.text())
        assert (await response.json())["error"]["details"][0]["loc"] == ["body", "url"]


async def test_two_senders_racing_for_the_same_due_deliveries_take_each_once(mongo_url: str, db_name: str) -> None:
    """The lease itself: two senders (as on two instances) look for due work at the same instant; every
    delivery is taken, and sent, by exactly one of them."""
    mongo = connect(mongo_url, timeout_seconds=5)
    store = Store(mongo[db_name])
    try:
        async with receiving(delay=0.2) as receiver:
            endpoint = await store.webhook_endpoints.insert(
                new_id(), url=receiver.url, events=["order.created"], description="", secret=new_secret()
            )
            stamp = epoch_ms(now())
            for index in range(8):
                await store.webhook_deliveries.create(WebhookDelivery(
                    id=delivery_id(endpoint.id, f"event-{index}"), endpoint_id=endpoint.id,
                    market_id=endpoint.market_id, event="order.created", order_id=new_id(),
                    stream=f"market:{endpoint.market_id}", seq=index + 1,
                    status="pending", next_attempt_ms=stamp, give_up_ms=stamp + 60_000, event_ms=stamp,
                    created_ms=stamp, body="{}",
                ))  # fmt: skip
            senders = [WebhookSender(store.webhook_endpoints, store.webhook_deliveries, RetrySchedule(0.001),
                                     HubMetrics(), allow_insecure=True) for _ in range(2)]  # fmt: skip
            taken = await asyncio.gather(*(sender.take_due() for sender in senders))
            received = await receiver.count(8)
            for sender in senders:
                await sender.close()
        assert sum(taken) == 8, taken
        assert sorted(item.webhook_id for item in received) == sorted(
            delivery_id(endpoint.id, f"event-{index}") for index in range(8)
        )
    finally:
        await mongo.drop_database(db_name)
        mongo.close()


async def test_no_webhook_secret_in_the_logs_even_at_debug(client: TestClient) -> None:
    """LOG_LEVEL=DEBUG as configure_logging sets it, through registration, rotation and a delivery."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    output = io.StringIO()
    try:
        configure_logging("DEBUG")
        root.handlers[0].setStream(output)  # type: ignore[attr-defined]
        shop = await open_shop(client)
        async with receiving() as receiver:
            hook = await register(client, shop.admin, shop.market_id, receiver.url, events=["order.created"])
            response = await client.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=shop.admin.headers)
            rotated = (await response.json())["secret"]
            await shop.place_order(shop.customers[0])
            (received,) = await receiver.count(1)
            await wait_log(client, shop.admin, hook["id"], lambda log: log and log[0]["status"] == "delivered")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = output.getvalue()
    assert "hub.access" in text  # it did log at DEBUG
    for secret in (hook["secret"], rotated):
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text
    assert received.headers["webhook-signature"] not in text


async def test_the_sender_stops_when_cancelled_as_it_is_woken(mongo_url: str, db_name: str) -> None:
    """Shutdown cancels the sender's loop; an attempt ending at that moment wakes it in the same tick. With
    asyncio.wait_for (Python 3.11) the cancel was swallowed and the app's cleanup waited forever."""
    mongo = connect(mongo_url, timeout_seconds=5)
    store = Store(mongo[db_name])
    try:
        sender = WebhookSender(store.webhook_endpoints, store.webhook_deliveries, RetrySchedule(0.001),
                               HubMetrics(), allow_insecure=True, poll_seconds=0.2)  # fmt: skip
        for _ in range(5):
            loop = asyncio.create_task(sender.run())
            await asyncio.sleep(0.05)  # it found nothing due and waits to be woken
            sender.wake()
            loop.cancel()
            done, _ = await asyncio.wait([loop], timeout=2)
            assert done, "the sender's loop outlived its cancellation"
            assert loop.cancelled()
        await sender.close()
    finally:
        await mongo.drop_database(db_name)
        mongo.close()
