"""A client that stops reading is cut off at its outgoing queue bound, and meanwhile does not slow
delivery to the others (one hub process, orders over REST)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.keys import metrics_key, socketio_key
from hub.settings import Settings
from tests.helpers.processes import HubFleet
from tests.helpers.socket_clients import LiveClient, Shop, dashboard_auth, open_shop

QUEUE_BOUND = 64 * 1024
LIMITS = {"rate_limit_per_minute": "100000", "rate_limit_per_hour": "1000000"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def open_stalled_dashboard(http: aiohttp.ClientSession, url: str, auth: dict[str, Any]) -> str:
    """An Engine.IO long-polling session on /dashboard that, once connected, never polls again."""
    endpoint = f"{url}/socket.io/?EIO=4&transport=polling"
    async with http.get(endpoint) as response:
        opened = await response.text()
    sid = orjson.loads(opened[1:])["sid"]
    session = f"{endpoint}&sid={sid}"
    async with http.post(session, data="40/dashboard," + orjson.dumps(auth).decode()) as response:
        assert response.status == 200
    async with http.get(session) as response:
        assert '40/dashboard,{"sid"' in await response.text()
    return session


async def place_and_time(shop: Shop, dashboard: LiveClient, count: int) -> list[float]:
    """Per order: seconds from the 201 to the order:created reaching the dashboard."""
    notes = "n" * 480  # about 1 KB per event
    customer = shop.customers[0]
    done: dict[str, float] = {}
    for _ in range(count):
        body = {"market_id": shop.market_id, "items": [{"product_id": shop.product["id"], "quantity": 1}],
                "delivery_option": "pickup", "payment_method": "cash", "notes": notes}  # fmt: skip
        response = await shop.http.post("/api/v1/orders", json=body, headers=customer.headers)
        assert response.status == 201, await response.text()
        done[(await response.json())["id"]] = time.monotonic()
    await dashboard.wait(lambda: set(done) <= set(dashboard.order_ids()), timeout=20)
    arrived = {data["order"]["id"]: at for name, data, at in dashboard.received if name == "order:created"}
    return [max(0.0, arrived[order_id] - stamp) for order_id, stamp in done.items()]


@pytest.mark.slow
async def test_a_stalled_client_is_cut_off_and_does_not_slow_the_others(
    hubs: HubFleet,
    db_name: str,
    http: aiohttp.ClientSession,
) -> None:
    hub = hubs.start(db_name=db_name, socket_max_queue_bytes=str(QUEUE_BOUND), **LIMITS)
    async with aiohttp.ClientSession(base_url=hub.url) as api:
        shop = await open_shop(api)
        dashboard = LiveClient(hub.url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
        await dashboard.connect()

        usual = await place_and_time(shop, dashboard, 10)
        stalled = await open_stalled_dashboard(http, hub.url, dashboard_auth(shop.admin, shop.market_id))
        meanwhile = await place_and_time(shop, dashboard, 100)  # ~100 KB for the stalled queue

        # The stalled session is gone (its queue passed 64 KiB), the normal one is not.
        async with http.get(stalled) as response:
            assert response.status == 400
        async with api.get("/metrics") as response:
            assert 'hub_slow_client_disconnects_total{namespace="/dashboard"} 1.0' in await response.text()
        assert dashboard.sio.connected

        # Delivery to the normal client kept its pace.
        assert statistics.median(meanwhile) <= 3 * statistics.median(usual) + 0.05, (usual, meanwhile)
        assert max(meanwhile) < 1.0, meanwhile
        await dashboard.close()


class StalledWebSocket:
    """A raw WebSocket Socket.IO client with a tiny receive buffer that, once connected to a
    namespace, never reads again: the server's writes back up into its own buffers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.buffer = b""

    async def open(self, namespace: str, auth: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
        await loop.sock_sendall(self.sock, request.encode())
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await loop.sock_recv(self.sock, 4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        assert (await self.read_text()).startswith("0{")
        await self.send_text(f"40{namespace}," + orjson.dumps(auth).decode())
        assert (await self.read_text()).startswith(f"40{namespace},")

    async def read_text(self) -> str:
        loop = asyncio.get_running_loop()
        while True:
            if len(self.buffer) >= 2:
                size, offset = self.buffer[1] & 0x7F, 2
                if size == 126:
                    size, offset = int.from_bytes(self.buffer[2:4], "big"), 4
                if len(self.buffer) >= offset + size:
                    payload, self.buffer = self.buffer[offset : offset + size], self.buffer[offset + size :]
                    return payload.decode()
            self.buffer += await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 5)

    async def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        size = len(payload)
        header = bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(socket_max_queue_bytes=QUEUE_BOUND, rate_limit_per_minute=100_000)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


async def test_a_stalled_websocket_is_cut_off(client: TestClient, app: web.Application) -> None:
    shop = await open_shop(client, customers=0)
    url = str(client.make_url("")).rstrip("/")
    server = app[socketio_key]
    normal = LiveClient(url, "/dashboard", dashboard_auth(shop.admin, shop.market_id))
    await normal.connect()
    stalled = StalledWebSocket(client.port)
    await stalled.open("/dashboard", dashboard_auth(shop.admin, shop.market_id))
    stalled_sids = set(server.eio.sockets) - {normal.sio.eio.sid}
    assert len(stalled_sids) == 1
    # Small kernel buffers on the server's side too, so a few hundred KiB back up into the hub's own
    # (loopback autotuning would otherwise absorb megabytes first).
    server_side = server.eio.sockets[next(iter(stalled_sids))].hub_transport.get_extra_info("socket")
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    # Big events (16 KiB each) straight through the server: the buffers fill within a few dozen.
    room = f"market:{shop.market_id}"
    for seq in range(1, 81):
        await server.emit("order:created", {"stream": room, "seq": seq, "order": {"notes": "x" * 16384}},
                          room=room, namespace="/dashboard")  # fmt: skip
        await asyncio.sleep(0.01)
    await normal.wait(lambda: len(normal.events()) == 80)
    assert normal.seqs() == list(range(1, 81))
    deadline = time.monotonic() + 5
    while stalled_sids & set(server.eio.sockets):
        assert time.monotonic() < deadline, "the stalled WebSocket was not cut off"
        await asyncio.sleep(0.1)
    assert b'hub_slow_client_disconnects_total{namespace="/dashboard"} 1.0' in app[metrics_key].exposition()
    assert normal.sio.connected
    stalled.close()
    await normal.close()
