"""Rate limits: per client IP, per user, per sign-in email; shared through Redis (one server or a
cluster); a bounded number of checks in flight; fail open when Redis fails; an Engine.IO session counted
once, then one request of each kind at a time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from redis.asyncio.cluster import RedisCluster

from hub import ratelimit
from hub.app import create_app
from hub.client_ip import client_ip
from hub.errors import RateLimited
from hub.keys import engineio_requests_key, request_limiter_key
from hub.metrics import HubMetrics
from hub.ratelimit import RedisLimitCounter, open_request_limiter
from hub.settings import Settings
from tests.helpers.api import expect_error, metric_value, read_metric, sign_up, unique_email
from tests.helpers.redis_cluster import RedisClusterProcesses, redis_cluster  # noqa: F401 - the fixture

REDIS_URL = "redis://127.0.0.1:6379/0"
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    prefix = f"test-rl-{uuid.uuid4().hex[:12]}"
    yield prefix
    redis = aioredis.from_url(REDIS_URL)
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        await redis.delete(key)
    await redis.aclose()


async def limited_client(aiohttp_client: MakeClient, make_settings: Callable[..., Settings], **overrides: Any) -> Any:
    return await aiohttp_client(create_app(make_settings(**overrides)))


async def assert_rate_limited(response: Any, *, max_retry_after: int = 60) -> None:
    await expect_error(response, 429, "RATE_LIMITED")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= max_retry_after


async def test_in_memory_limit_per_ip_with_retry_after(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await limited_client(aiohttp_client, make_settings, rate_limit_per_minute=3)
    # TRUSTED_PROXY_COUNT is 0: a made-up X-Forwarded-For does not make another client.
    for n in range(3):
        response = await client.get("/api/v1/markets", headers={"X-Forwarded-For": f"10.0.0.{n}"})
        assert response.status == 200, await response.text()
    refused = await client.get("/api/v1/markets", headers={"X-Forwarded-For": "10.0.0.99"})
    await assert_rate_limited(refused)
    assert refused.headers["X-Request-ID"]

    # Exempt: liveness, readiness, metrics, pages, static assets and docs.
    for path in ("/health", "/ready", "/metrics", "/", "/static/app.css", "/api/openapi.json"):
        response = await client.get(path)
        assert response.status == 200, (path, response.status)
    assert await read_metric(client, "hub_rate_limited_requests_total", scope="ip") == 1


async def test_an_engineio_session_counts_once_and_takes_one_request_of_each_kind_at_a_time(
    aiohttp_client: MakeClient, make_settings: Any
) -> None:
    """Opening the session is the request the per-IP limit counts; the polls and posts inside it are not
    counted, and a second long-poll of the same session while one is waiting is refused (400)."""
    client = await limited_client(aiohttp_client, make_settings, rate_limit_per_minute=1)
    opened = await client.get("/socket.io/?EIO=4&transport=polling")
    assert opened.status == 200, await opened.text()
    sid = orjson.loads((await opened.text())[1:])["sid"]
    inside = f"/socket.io/?EIO=4&transport=polling&sid={sid}"

    waiting = asyncio.ensure_future(client.get(inside))  # nothing to read yet: it waits
    sessions = client.app[engineio_requests_key]
    deadline = time.monotonic() + 10
    while not sessions.busy(sid, "GET", "polling"):  # no event to await for "the server holds the poll"
        assert time.monotonic() < deadline, "the first poll never reached the server"
        await asyncio.sleep(0.01)
    overlapping = await asyncio.wait_for(client.get(inside), 10)
    await expect_error(overlapping, 400, "BAD_REQUEST")

    # A Socket.IO CONNECT to /dashboard without a token, posted inside the session: not counted (the one
    # request a minute went to opening the session), and its refusal answers the waiting poll.
    posted = await client.post(inside, data="40/dashboard,{}")
    assert posted.status == 200, await posted.text()
    answered = await asyncio.wait_for(waiting, 10)
    assert answered.status == 200 and "unauthorized" in await answered.text()
    assert not sessions.busy(sid, "GET", "polling")
    await assert_rate_limited(await client.get("/socket.io/?EIO=4&transport=polling"))  # a new session counts


async def test_limit_per_hour(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await limited_client(
        aiohttp_client,
        make_settings,
        rate_limit_per_minute=50,
        rate_limit_per_hour=2,
        rate_limit_strategy="fixed-window",
    )
    assert (await client.get("/api/v1/products")).status == 200
    assert (await client.get("/api/v1/products")).status == 200
    await assert_rate_limited(await client.get("/api/v1/products"), max_retry_after=3600)


async def test_limit_per_user_across_addresses(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await limited_client(aiohttp_client, make_settings, rate_limit_per_minute=5, trusted_proxy_count=1)
    account = await sign_up(client)  # 2 requests from 127.0.0.1, no token
    # One trusted proxy: each request comes from another client address, but with the same token.
    for n in range(5):
        headers = {**account.headers, "X-Forwarded-For": f"198.51.100.{n}"}
        response = await client.get("/api/v1/users/me", headers=headers)
        assert response.status == 200, await response.text()
    refused = await client.get("/api/v1/users/me", headers={**account.headers, "X-Forwarded-For": "198.51.100.77"})
    await assert_rate_limited(refused)
    # Without the token the new address is a client of its own.
    assert (await client.get("/api/v1/markets", headers={"X-Forwarded-For": "198.51.100.78"})).status == 200
    assert await read_metric(client, "hub_rate_limited_requests_total", scope="user") == 1


async def test_login_limited_per_email_and_body_still_read(aiohttp_client: MakeClient, make_settings: Any) -> None:
    client = await limited_client(aiohttp_client, make_settings, login_rate_limit_per_minute=2, trusted_proxy_count=1)
    email = unique_email("victim")
    for n in range(2):
        response = await client.post(
            "/api/v1/users/login",
            json={"email": email, "password": "wrong password"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        # 401, not 400: the handler read the body that the limiter had read first.
        await expect_error(response, 401, "UNAUTHORIZED")
    refused = await client.post(
        "/api/v1/users/login",
        json={"email": email.upper(), "password": "x"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    await assert_rate_limited(refused)
    other = await client.post("/api/v1/users/login", json={"email": unique_email(), "password": "wrong password"})
    await expect_error(other, 401, "UNAUTHORIZED")
    # A body that is not JSON is still the handler's to refuse.
    await expect_error(await client.post("/api/v1/users/login", data=b"{not json"), 400, "BAD_REQUEST")
    assert await read_metric(client, "hub_rate_limited_requests_total", scope="email") == 1


async def test_limit_shared_between_instances_through_redis(
    aiohttp_client: MakeClient, make_settings: Any, redis_prefix: str
) -> None:
    shared = {"redis_url": REDIS_URL, "rate_limit_key_prefix": redis_prefix, "rate_limit_per_minute": 4}
    instance_a = await limited_client(aiohttp_client, make_settings, **shared)
    instance_b = await limited_client(aiohttp_client, make_settings, **shared)
    for client in (instance_a, instance_b, instance_a, instance_b):
        assert (await client.get("/api/v1/markets")).status == 200
    # Four hits in all: the fifth is refused, whichever instance gets it.
    await assert_rate_limited(await instance_b.get("/api/v1/markets"))
    await assert_rate_limited(await instance_a.get("/api/v1/markets"))
    assert await read_metric(instance_b, "hub_rate_limited_requests_total", scope="ip") == 1

    # Another prefix is another set of limits.
    elsewhere = await limited_client(
        aiohttp_client, make_settings, **{**shared, "rate_limit_key_prefix": redis_prefix + "-other"}
    )
    assert (await elsewhere.get("/api/v1/markets")).status == 200
    redis = aioredis.from_url(REDIS_URL)
    try:
        assert [key async for key in redis.scan_iter(match=f"{redis_prefix}:ratelimit*")]
    finally:
        await redis.aclose()


async def test_every_limit_of_a_request_in_one_redis_round_trip(
    aiohttp_client: MakeClient, make_settings: Any, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(make_settings(redis_url=REDIS_URL, rate_limit_key_prefix=redis_prefix, rate_limit_per_minute=50))
    client = await aiohttp_client(app)
    account = await sign_up(client)  # the script is loaded into Redis by now
    counter = app[request_limiter_key].counter
    assert isinstance(counter, RedisLimitCounter) and counter.redis is not None
    sent: list[Any] = []
    execute = counter.redis.execute_command

    async def counted(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[0])
        return await execute(*args, **kwargs)

    monkeypatch.setattr(counter.redis, "execute_command", counted)
    # Per address and per user, per minute and per hour: four limits, one round trip.
    assert (await client.get("/api/v1/users/me", headers=account.headers)).status == 200
    assert sent == ["EVALSHA"]


async def count_hits(settings: Settings, identities: list[dict[str, str]]) -> tuple[int, int, float]:
    """All `identities` checked at once through one limiter: (counted, refused, storage failures)."""
    metrics = HubMetrics()
    async with open_request_limiter(settings, metrics) as limiter:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(limiter.hit(request) for request in identities), return_exceptions=True), 30
        )
    unexpected = [o for o in outcomes if o is not None and not isinstance(o, RateLimited)]
    assert not unexpected, unexpected[:3]
    refused = sum(isinstance(o, RateLimited) for o in outcomes)
    failures = metric_value(metrics.exposition().decode(), "hub_rate_limit_storage_errors_total")
    return len(outcomes) - refused, refused, failures


async def test_more_checks_at_once_than_connections_wait_for_one_and_none_fails_open(redis_prefix: str) -> None:
    # A reconnect storm in small: 300 new sessions from one address at once, 4 connections to Redis
    # (redis-py's own pool would raise MaxConnectionsError past its size, and the limits fail open).
    settings = Settings(
        redis_url=REDIS_URL, rate_limit_key_prefix=redis_prefix, rate_limit_redis_connections=4,
        rate_limit_per_minute=250, rate_limit_per_hour=10_000,
    )  # fmt: skip
    counted, refused, failures = await count_hits(settings, [{ratelimit.IP: "192.0.2.1"}] * 300)
    assert (counted, refused, failures) == (250, 50, 0)


@pytest.mark.slow
async def test_limits_on_a_redis_cluster_of_three_masters(
    redis_cluster: RedisClusterProcesses,  # noqa: F811 - the fixture
) -> None:
    settings = Settings(
        redis_url=redis_cluster.url, rate_limit_per_minute=3, rate_limit_per_hour=100,
        login_rate_limit_per_minute=2, login_rate_limit_per_hour=100,
    )  # fmt: skip
    ip, user, email = ratelimit.IP, ratelimit.USER, ratelimit.EMAIL
    sign_in = ratelimit.email_identity("someone@example.com")
    requests = [
        {ip: "198.51.100.1", user: "u1", email: sign_in},
        {ip: "198.51.100.2", user: "u1", email: sign_in},
        {ip: "198.51.100.3", user: "u2", email: sign_in},  # the email's third attempt: refused
        {ip: "198.51.100.4", user: "u1"},  # the user's third request
        {ip: "198.51.100.5", user: "u1"},  # its fourth: refused, from an address never seen
    ]
    metrics = HubMetrics()
    async with open_request_limiter(settings, metrics) as limiter:
        refused = []
        for n, request in enumerate(requests):
            try:
                await asyncio.wait_for(limiter.hit(request), 10)
            except RateLimited:
                refused.append(n)
        assert refused == [2, 4]
        # One request's identities have their keys on different masters: no single script call could hold them.
        counter = limiter.counter
        assert isinstance(counter, RedisLimitCounter) and isinstance(counter.redis, RedisCluster)
        keys = [counter.key(scope, identity, limiter.limits[scope][0]) for scope, identity in requests[0].items()]
        assert len({counter.redis.get_node_from_key(key).name for key in keys}) >= 2  # type: ignore[union-attr]
    exposition = metrics.exposition().decode()
    assert metric_value(exposition, "hub_rate_limit_storage_errors_total") == 0
    assert metric_value(exposition, "hub_rate_limited_requests_total", scope="email") == 1
    assert metric_value(exposition, "hub_rate_limited_requests_total", scope="user") == 1


async def test_redis_down_fails_open(aiohttp_client: MakeClient, make_settings: Any) -> None:
    # Nothing listens on port 1: every Redis call fails at once.
    client = await limited_client(
        aiohttp_client, make_settings, redis_url="redis://127.0.0.1:1/0", rate_limit_per_minute=1
    )
    for _ in range(3):
        response = await client.get("/api/v1/markets")
        assert response.status == 200, await response.text()
    assert await read_metric(client, "hub_rate_limit_storage_errors_total") >= 1


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("10.1.1.1", [], 0, "10.1.1.1"),
        ("10.1.1.1", ["6.6.6.6"], 0, "10.1.1.1"),  # no trusted proxy: the header is ignored
        ("10.1.1.1", ["6.6.6.6, 192.0.2.7"], 1, "192.0.2.7"),  # the proxy's entry, not the client's claim
        ("10.1.1.1", ["6.6.6.6, 192.0.2.7", "10.0.0.2"], 2, "192.0.2.7"),  # several headers are one list
        ("10.1.1.1", ["192.0.2.7"], 2, "10.1.1.1"),  # fewer hops than proxies: not believed
        ("10.1.1.1", ["not-an-ip"], 1, "10.1.1.1"),
        ("10.1.1.1", ["[2001:db8::1]:443"], 1, "2001:db8::1"),
        ("10.1.1.1", ["192.0.2.7:5123"], 1, "192.0.2.7"),
        (None, [], 0, "unknown"),
    ],
)
def test_client_ip(peer: str | None, forwarded: list[str], trusted: int, expected: str) -> None:
    assert client_ip(peer, forwarded, trusted) == expected
