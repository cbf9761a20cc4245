"""Shared fixtures: one nx-27017 server per test session, a database of its own for every test,
and helpers that sign people up through the public API."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from store.embedded import EmbeddedMongo, free_port

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse 42"


def wait_for_port(port: int, *, timeout: float = 20, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered on port {port} within {timeout}s")


class NxServer:
    """An nx-27017 process that a test may stop and start again (same port, same files)."""

    def __init__(self, data_dir: Path) -> None:
        self.embedded = EmbeddedMongo(data_dir, port=free_port())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.embedded.url

    def start(self) -> None:
        (self.embedded.data_dir / "mongo").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.embedded.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.embedded.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def nx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NxServer]:
    server = NxServer(tmp_path_factory.mktemp("nx"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongo_url(nx_server: NxServer) -> str:
    """A real MongoDB when MONGODB_URL is set in the environment, else the session's nx-27017."""
    return os.environ.get("MONGODB_URL") or nx_server.url


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def make_settings(mongo_url: str, db_name: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "mongodb_url": mongo_url,
            "mongodb_db": db_name,
            "secret_key": TEST_SECRET,
            "data_dir": tmp_path / "var",
            "redis_url": None,
            "db_timeout_seconds": 2,
            # Every test comes from 127.0.0.1: the default limits (100/min) would refuse busy tests.
            # tests/test_ratelimit.py sets its own. A prefix per test keeps shared Redis counters apart.
            "rate_limit_per_minute": 100_000,
            "rate_limit_per_hour": 1_000_000,
            "login_rate_limit_per_minute": 10_000,
            "login_rate_limit_per_hour": 100_000,
            "rate_limit_key_prefix": f"test-{db_name}",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], app: web.Application) -> TestClient:
    return await aiohttp_client(app)


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


# Multi-process fixtures (real hub processes, a private redis-server): see tests/processes.py.
# Page-test fixtures (headless Chromium, the hub on a loopback port): see tests/browser.py.
from tests.browser import base_url, browser, hub, pages  # noqa: E402, F401
from tests.processes import hubs, private_redis  # noqa: E402, F401


async def stock_of(client: TestClient, product_id: str, headers: dict[str, str] | None = None) -> int:
    response = await client.get(f"/api/v1/products/{product_id}", headers=headers)
    assert response.status == 200, await response.text()
    return int((await response.json())["stock"])
