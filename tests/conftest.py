"""Shared fixtures: one nx-27017 server per test session, a database of its own for every test, the app and
its client, base URLs, the page-test browser (tests/helpers/browser.py). Helpers live in tests/helpers/."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.keys import order_follow_up_key
from hub.settings import Settings
from tests.helpers.api import TEST_SECRET
from tests.helpers.faults import KilledPublisher, PublisherDies
from tests.helpers.nx import NxServer


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
            # tests/api/test_ratelimit.py sets its own. A prefix per test keeps shared Redis counters apart.
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


@pytest.fixture
def publisher_dies(app: web.Application) -> PublisherDies:
    """`with publisher_dies(): ...`: the app's order writes succeed, then the process "dies" before any of
    their events reaches the history (the outbox keeps them for the repair pass); the real publisher after."""

    @contextlib.contextmanager
    def dying() -> Iterator[None]:
        follow_up = app[order_follow_up_key]
        publisher = follow_up.publisher
        follow_up.publisher = KilledPublisher()  # type: ignore[assignment]
        try:
            yield
        finally:
            follow_up.publisher = publisher

    return dying


# Multi-process fixtures (real hub processes, a private redis-server): see tests/helpers/processes.py.
# Page-test fixtures (headless Chromium, the hub on a loopback port): see tests/helpers/browser.py.
from tests.helpers.browser import base_url, browser, hub, pages  # noqa: E402, F401
from tests.helpers.processes import hubs, private_redis  # noqa: E402, F401
