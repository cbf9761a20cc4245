"""A Socket.IO test client that records what it receives and can wait for it, plus a shop setup
(market, product, customer) through the REST API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

from tests.helpers.api import Account, make_market, make_product, sign_up

SEQUENCED = ("order:created", "order:updated")
RECORDED = (*SEQUENCED, "stats", "resync", "catalog", "auth:expired", "auth:revoked")


class LiveClient:
    """One namespace connection. `received` holds (event, payload, monotonic arrival time)."""

    def __init__(
        self, url: str, namespace: str, auth: dict[str, Any] | None, *,
        headers: dict[str, str] | None = None, transports: tuple[str, ...] = ("websocket",),
    ) -> None:  # fmt: skip
        self.url = url
        self.namespace = namespace
        self.auth = auth
        self.headers = headers or {}
        self.transports = list(transports)
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any, float]] = []
        self.refusal: Any = None
        self.disconnected = asyncio.Event()
        self.disconnected_at: float | None = None
        self._changed = asyncio.Event()
        for name in RECORDED:
            self.sio.on(name, self._recorder(name), namespace=namespace)
        self.sio.on("connect_error", self._on_refused, namespace=namespace)
        self.sio.on("disconnect", self._on_disconnect, namespace=namespace)

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any = None) -> None:
            self.received.append((name, data, time.monotonic()))
            self._changed.set()

        return record

    def _on_refused(self, data: Any = None) -> None:
        self.refusal = data
        self._changed.set()

    def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnected_at = self.disconnected_at or time.monotonic()
        self.disconnected.set()
        self._changed.set()

    async def connect(self) -> None:
        await self.sio.connect(self.url, namespaces=[self.namespace], auth=self.auth, headers=self.headers,
                               transports=self.transports, wait_timeout=10)  # fmt: skip

    async def refused_with(self) -> Any:
        """Connect, expecting a refusal; the connect_error payload (None if it was not refused that way)."""
        try:
            await self.connect()
        except socketio.exceptions.ConnectionError:
            await self.wait(lambda: self.refusal is not None, timeout=2, fail=False)
            return self.refusal if self.refusal is not None else "connection failed"
        await self.close()
        return None

    async def close(self) -> None:
        await self.sio.disconnect()

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, namespace=self.namespace, timeout=timeout)

    async def wait(self, predicate: Callable[[], bool], *, timeout: float = 15, fail: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if fail:
                    raise AssertionError(f"timed out after {timeout}s; received: {self.summary()}")
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
        return True

    def events(self, *names: str) -> list[Any]:
        wanted = names or SEQUENCED
        return [data for name, data, _ in self.received if name in wanted]

    def order_ids(self) -> list[str]:
        return [data["order"]["id"] for data in self.events()]

    def seqs(self, stream: str | None = None) -> list[int]:
        return [data["seq"] for data in self.events() if stream is None or data["stream"] == stream]

    def summary(self) -> list[tuple[str, Any]]:
        return [(name, (data or {}).get("seq") if isinstance(data, dict) else data) for name, data, _ in self.received]


async def barrier(shop: Shop, customer: Account, *lives: LiveClient) -> None:
    """Where a test claims nothing else arrived: a marker order, placed now, and waited for on every client.

    In one hub, events are emitted by one task in the order they were published, and each client's
    events go out in the order they were emitted, so anything emitted before the marker (a duplicate, a
    stray event) has reached a client before the marker does. The marker's own events are then dropped
    from what the clients recorded, so the test's assertions read as before. Not for several hubs: Redis
    channels keep no order between instances."""
    marker = str((await shop.place_order(customer))["id"])
    for live in lives:
        await live.wait(lambda live=live: marker in live.order_ids())  # type: ignore[misc]
        live.received = [item for item in live.received if not _about(item[1], marker)]


def _about(data: Any, order_id: str) -> bool:
    return isinstance(data, dict) and isinstance(data.get("order"), dict) and data["order"].get("id") == order_id


@dataclass
class Shop:
    """A market with one product in plenty, its admin, and the HTTP session it was made with."""

    http: Any
    admin: Account
    market: dict[str, Any]
    product: dict[str, Any]
    customers: list[Account] = field(default_factory=list)

    @property
    def market_id(self) -> str:
        return str(self.market["id"])

    async def place_order(self, customer: Account, http: Any = None, quantity: int = 1) -> dict[str, Any]:
        body = {"market_id": self.market_id, "items": [{"product_id": self.product["id"], "quantity": quantity}],
                "delivery_option": "pickup", "payment_method": "cash"}  # fmt: skip
        response = await (http or self.http).post("/api/v1/orders", json=body, headers=customer.headers)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def move(self, order_id: str, status: str, http: Any = None) -> dict[str, Any]:
        response = await (http or self.http).patch(
            f"/api/v1/orders/{order_id}/status", json={"status": status}, headers=self.admin.headers
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def open_shop(http: Any, *, customers: int = 1, stock: int = 100_000) -> Shop:
    admin = await sign_up(http, "market_admin")
    market = await make_market(http, admin)
    product = await make_product(http, admin, market["id"], stock=stock, price_cents=1000)
    shop = Shop(http=http, admin=admin, market=market, product=product)
    shop.customers = [await sign_up(http, "customer") for _ in range(customers)]
    return shop


def dashboard_auth(account: Account, market_id: str | None, **extra: Any) -> dict[str, Any]:
    auth: dict[str, Any] = {"token": account.token, **extra}
    if market_id is not None:
        auth["market_id"] = market_id
    return auth
