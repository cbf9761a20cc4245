"""The database goes away and comes back: 503 UNAVAILABLE within 5 s, /ready says so, /health does not,
and the same app recovers on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from tests.helpers.api import expect_error, sign_up
from tests.helpers.nx import NxServer


@pytest.fixture
def private_nx(tmp_path: Path) -> Iterator[NxServer]:
    server = NxServer(tmp_path / "nx")
    server.start()
    yield server
    server.stop()


async def test_database_down_then_back(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    make_settings: Callable[..., Settings],
    private_nx: NxServer,
) -> None:
    # The production timeout, so the 5 s bound is checked as shipped.
    default_timeout = Settings.model_fields["db_timeout_seconds"].default
    client = await aiohttp_client(
        create_app(make_settings(mongodb_url=private_nx.url, db_timeout_seconds=default_timeout))
    )
    account = await sign_up(client)

    private_nx.stop()
    for request in (
        lambda: client.get("/api/v1/users/me", headers=account.headers),
        lambda: client.patch("/api/v1/users/me", json={"name": "Down"}, headers=account.headers),
    ):
        started = time.monotonic()
        response = await request()
        await expect_error(response, 503, "UNAVAILABLE")
        assert time.monotonic() - started < 5
    started = time.monotonic()
    ready = await client.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"]["database"] == "unavailable"
    assert time.monotonic() - started < 5
    health = await client.get("/health")
    assert (health.status, await health.json()) == (200, {"status": "ok"})

    private_nx.start()
    me = await wait_for_status(client, 200, "/api/v1/users/me", headers=account.headers)
    assert (await me.json())["name"] == account.user["name"]  # the write during the outage did not happen
    await wait_for_status(client, 200, "/ready")


async def wait_for_status(client: TestClient, status: int, path: str, **kwargs: Any) -> Any:
    async with asyncio.timeout(20):
        while True:
            response = await client.get(path, **kwargs)
            if response.status == status:
                return response
            await asyncio.sleep(0.2)
