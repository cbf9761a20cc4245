"""Webhooks across real hub processes sharing one database: the instance that placed the order is
killed (SIGKILL) while its attempt is at the receiver, and another instance delivers it, with the same
`webhook-id`, once the dead sender's lease has run out (hub/webhooks/sender.py, LEASE_SECONDS)."""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession
from standardwebhooks.webhooks import Webhook

from hub.webhooks.sender import LEASE_SECONDS
from tests.helpers.processes import HubFleet
from tests.helpers.socket_clients import open_shop
from tests.helpers.webhook_receiver import HANG, receiving

WEBHOOKS = {"webhook_allow_insecure": "1", "webhook_retry_scale": "0.001"}


async def test_a_delivery_whose_sender_was_killed_is_delivered_by_another_instance(
    hubs: HubFleet, db_name: str
) -> None:
    placer = hubs.start(db_name=db_name, **WEBHOOKS)
    async with (
        receiving(lambda number: HANG if number == 1 else 200) as receiver,
        ClientSession(base_url=placer.url) as http,
    ):
        shop = await open_shop(http)
        response = await http.post(f"/api/v1/markets/{shop.market_id}/webhooks", headers=shop.admin.headers,
                                   json={"url": receiver.url, "events": ["order.created"]})  # fmt: skip
        assert response.status == 201, await response.text()
        hook = await response.json()
        order = await shop.place_order(shop.customers[0])
        # The only instance's attempt hangs at the receiver; the instance is killed in the middle of it.
        (first,) = await receiver.count(1)
        assert placer.process is not None
        placer.process.kill()
        placer.process.wait()
        # Another instance takes the delivery over once the dead sender's lease has run out.
        survivor = await asyncio.to_thread(hubs.start, db_name=db_name, **WEBHOOKS)
        second = (await receiver.count(2, timeout=LEASE_SECONDS + 10))[1]
        assert second.webhook_id == first.webhook_id
        body = Webhook(hook["secret"]).verify(second.body, second.headers)
        assert body["data"]["order"]["id"] == order["id"]
        for _ in range(100):
            response = await http.get(
                f"{survivor.url}/api/v1/webhooks/{hook['id']}/deliveries", headers=shop.admin.headers
            )
            (delivery,) = await response.json()
            if delivery["status"] == "delivered":
                break
            await asyncio.sleep(0.05)
        assert (delivery["id"], delivery["status"], delivery["attempts"]) == (first.webhook_id, "delivered", 2)
