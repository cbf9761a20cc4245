"""Helpers that act through the public API: sign people up, make markets, products and orders, read errors
and metrics."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from hub.settings import Settings

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse 42"


@dataclass
class Account:
    id: str
    email: str
    role: str
    token: str
    user: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def server_url(client: TestClient) -> str:
    """The test client's server, for Socket.IO clients and raw HTTP (no trailing slash)."""
    return str(client.make_url("")).rstrip("/")


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def sign_up(client: TestClient, role: str = "customer", **fields: Any) -> Account:
    """Register and sign in through the API."""
    email = fields.pop("email", None) or unique_email(role)
    body = {"email": email, "name": fields.pop("name", role.title()), "password": PASSWORD,
            "confirm_password": PASSWORD, "role": role, **fields}  # fmt: skip
    response = await client.post("/api/v1/users/register", json=body)
    assert response.status == 201, await response.text()
    return await sign_in(client, email)


async def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/api/v1/users/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    data = await response.json()
    user = data["user"]
    return Account(id=user["id"], email=email, role=user["role"], token=data["access_token"], user=user)


async def make_super_admin(settings: Settings, client: TestClient, email: str | None = None) -> Account:
    """Through the operator's CLI path (create-admin), then signed in over HTTP."""
    from hub.__main__ import create_admin

    email = email or unique_email("admin")
    await create_admin(settings, email, PASSWORD, "Admin")
    return await sign_in(client, email)


async def make_market(client: TestClient, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": fields.pop("name", f"Market {uuid.uuid4().hex[:6]}"), "contact_email": owner.email,
            "address": "1 Market Square, Kyiv", **fields}  # fmt: skip
    response = await client.post("/api/v1/markets", json=body, headers=owner.headers)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def make_product(client: TestClient, owner: Account, market_id: str, **fields: Any) -> dict[str, Any]:
    body = {"market_id": market_id, "name": fields.pop("name", "Apples"), "price_cents": 2500, "stock": 10, **fields}
    response = await client.post("/api/v1/products", json=body, headers=owner.headers)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def expect_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the DESIGN.md error envelope with this status and code; return its `error` object."""
    text = await response.text()
    assert response.status == status, text
    error = dict((await response.json())["error"])
    assert error["code"] == code, text
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0.0 when the series does not exist yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return float(sample.value)
    return 0.0


async def read_metric(client: TestClient, name: str, **labels: str) -> float:
    """The current value of a sample at the client's /metrics."""
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    return metric_value(await response.text(), name, **labels)


async def place_order(
    client: TestClient,
    customer: Account,
    market_id: str,
    lines: list[tuple[str, int]],
    *,
    key: str | None = None,
    **fields: Any,
) -> Any:
    """POST /orders for `lines` [(product_id, quantity)]; returns the response (status unchecked)."""
    body = {"market_id": market_id, "items": [{"product_id": pid, "quantity": qty} for pid, qty in lines],
            "delivery_option": "pickup", "payment_method": "cash", **fields}  # fmt: skip
    headers = dict(customer.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/api/v1/orders", json=body, headers=headers)


async def set_order_status(client: TestClient, actor: Account, order_id: str, status: str, **fields: Any) -> Any:
    """PATCH /orders/{id}/status; returns the response (status unchecked)."""
    return await client.patch(f"/api/v1/orders/{order_id}/status", json={"status": status, **fields},
                              headers=actor.headers)  # fmt: skip


async def stock_of(client: TestClient, product_id: str, headers: dict[str, str] | None = None) -> int:
    response = await client.get(f"/api/v1/products/{product_id}", headers=headers)
    assert response.status == 200, await response.text()
    return int((await response.json())["stock"])
