"""Rate limits on the `limits` library: per client IP, per signed-in user and, for sign-in, per email.

With REDIS_URL the counters live in Redis under RATE_LIMIT_KEY_PREFIX, so every instance that shares
the prefix shares the limits, and all the limits of one request are counted in ONE round trip (one
script call; on a Redis Cluster one per hash slot, in parallel); without it they live in this
process's memory (no I/O). When Redis fails the check is skipped (fail open: logged and counted)
rather than refusing every request, and Redis is left alone for a few seconds so an outage does not
add a timeout to each request.

At most RATE_LIMIT_REDIS_CONNECTIONS script calls are in flight; more wait their turn (a bounded
wait, then fail open). Without that bound a burst of new connections (a reconnect storm: every new
Engine.IO session is counted) ran redis-py's pool out of connections, and each time the limits
failed open for the whole back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter
from limits.errors import StorageError
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from hub import redis_clients
from hub.errors import RateLimited
from hub.metrics import HubMetrics
from hub.settings import Settings

log = logging.getLogger(__name__)

# Scopes: who a limit counts against.
IP, USER, EMAIL = "ip", "user", "email"
REDIS_TIMEOUT_SECONDS = 0.5
# How long a check waits for one of the RATE_LIMIT_REDIS_CONNECTIONS: long enough for a storm's burst
# of new sessions to be counted (the hub's loop, not Redis, is what they wait for), bounded so a hung
# Redis cannot hold requests indefinitely.
CONNECTION_WAIT_SECONDS = 5.0
STORAGE_BACKOFF_SECONDS = 5.0
_STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


def email_identity(email: str) -> str:
    """Sign-in attempts are counted per address without keeping the address itself in Redis."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Check:
    scope: str
    identity: str
    item: RateLimitItem


# The limits of one request (of one hash slot, on a cluster) in ONE Redis round trip. Per key, the
# same list (moving window: one timestamp per hit, newest first, trimmed to the limit) or counter
# (fixed window) as the `limits` library's Redis storage keeps, so its strategies' semantics are kept.
# Returns, per key, 0 when the hit was counted, else the seconds until the limit lets a request
# through again.
_HIT_ALL = """
local now = tonumber(ARGV[1])
local moving = ARGV[2] == 'moving-window'
local result = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i + 1])
  local expiry = tonumber(ARGV[2 * i + 2])
  if moving then
    local oldest = redis.call('lindex', key, limit - 1)
    if oldest and tonumber(oldest) >= now - expiry then
      result[i] = math.max(1, math.ceil(tonumber(oldest) + expiry - now))
    else
      redis.call('lpush', key, now)
      redis.call('ltrim', key, 0, limit - 1)
      redis.call('expire', key, expiry)
      result[i] = 0
    end
  else
    local count = redis.call('incrby', key, 1)
    if count == 1 then redis.call('expire', key, expiry) end
    if count > limit then
      result[i] = math.max(1, redis.call('ttl', key))
    else
      result[i] = 0
    end
  end
end
return result
"""


class LimitCounter(Protocol):
    async def hit(self, checks: Sequence[_Check]) -> list[int]:
        """Count one hit per check; per check 0 (counted) or the seconds until it may be retried."""
        ...


class RedisLimitCounter:
    """A request's checks in one script call per hash slot (one call on a single Redis).

    A key is named after its identity in a hash tag (`{ip/192.0.2.7}`): a user's limits are shared by
    every address it comes from, so one tag per request would not do; the keys of one identity (its
    per-minute and per-hour windows) share a slot, and a request's identities (address, user, sign-in
    email) are at most three slots. On a Redis Cluster the calls go to their slots' masters at once.
    """

    def __init__(self, url: str, *, key_prefix: str, strategy: str, connections: int) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.strategy = strategy
        self.redis: aioredis.Redis | RedisCluster | None = None  # connected on first use
        self._options = {
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            # The cluster client's; one Redis gets none (hub/redis_clients.py): _call bounds a call as a whole.
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
            "max_connections": connections,  # per node on a cluster; never reached, see _calls
        }
        self._calls = asyncio.Semaphore(connections)
        self._connecting = asyncio.Lock()
        self._script: AsyncScript | None = None

    def key(self, scope: str, identity: str, item: RateLimitItem) -> str:
        """The identity in a hash tag: on a cluster its windows share a slot."""
        window = f"{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
        return f"{self.key_prefix}:{{{scope}/{identity}}}/{window}"

    async def hit(self, checks: Sequence[_Check]) -> list[int]:
        script = self._script
        if script is None:  # the first checks connect (a timer only then, not on every request)
            async with asyncio.timeout(CONNECTION_WAIT_SECONDS):  # others may be connecting first
                script = await self._connected()
        keys = [self.key(check.scope, check.identity, check.item) for check in checks]
        cluster = isinstance(self.redis, RedisCluster)
        by_slot: dict[int, list[int]] = {}  # hash slot -> indexes of its checks (one group on a single Redis)
        for index, key in enumerate(keys):
            by_slot.setdefault(key_slot(key.encode()) if cluster else 0, []).append(index)
        groups = list(by_slot.values())
        now = time.time()
        calls = [self._call(script, [keys[i] for i in group], [checks[i].item for i in group], now) for group in groups]
        # One call (always on a single Redis) is awaited as is: gather would wrap it in a task of its own.
        replies = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
        retry = [0] * len(checks)
        for group, reply in zip(groups, replies, strict=True):
            for index, seconds in zip(group, reply, strict=True):
                retry[index] = int(seconds)
        return retry

    async def _call(self, script: AsyncScript, keys: list[str], items: list[RateLimitItem], now: float) -> list[int]:
        args: list[float | int | str] = [now, self.strategy]
        for item in items:
            args += [item.amount, item.get_expiry()]
        if self._calls.locked():  # all in flight: wait for one, bounded (a timer only then)
            async with asyncio.timeout(CONNECTION_WAIT_SECONDS):
                await self._calls.acquire()
        else:
            await self._calls.acquire()  # returns at once
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
                return list(await script(keys=keys, args=args))
        finally:
            self._calls.release()

    async def _connected(self) -> AsyncScript:
        if self._script is not None:
            return self._script
        async with self._connecting:
            if self._script is None:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
                    self.redis = await redis_clients.connect(self.url, **self._options)
                self._script = self.redis.register_script(_HIT_ALL)
        return self._script

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


class MemoryLimitCounter:
    """This process's memory (the `limits` library): no I/O at all."""

    def __init__(self, strategy: str) -> None:
        self.strategy = _STRATEGIES[strategy](MemoryStorage())

    async def hit(self, checks: Sequence[_Check]) -> list[int]:
        retry: list[int] = []
        for check in checks:
            if await self.strategy.hit(check.item, check.scope, check.identity):
                retry.append(0)
            else:
                stats = await self.strategy.get_window_stats(check.item, check.scope, check.identity)
                retry.append(max(1, math.ceil(stats.reset_time - time.time())))
        return retry


class RequestLimiter:
    """Counts a request against every limit of the identities it carries; raises RateLimited when one is spent."""

    def __init__(self, counter: LimitCounter, settings: Settings, metrics: HubMetrics) -> None:
        self.counter = counter
        self.metrics = metrics
        per_client = (
            RateLimitItemPerMinute(settings.rate_limit_per_minute),
            RateLimitItemPerHour(settings.rate_limit_per_hour),
        )
        login = (
            RateLimitItemPerMinute(settings.login_rate_limit_per_minute),
            RateLimitItemPerHour(settings.login_rate_limit_per_hour),
        )
        self.limits: dict[str, tuple[RateLimitItem, ...]] = {IP: per_client, USER: per_client, EMAIL: login}
        self._storage_down_until = 0.0

    async def hit(self, identities: Mapping[str, str]) -> None:
        """Count one request for each (scope, identity); RateLimited(retry_after) if any limit is exceeded."""
        if time.monotonic() < self._storage_down_until:
            return
        checks = [
            _Check(scope, identity, item) for scope, identity in identities.items() for item in self.limits[scope]
        ]
        if not checks:
            return
        try:
            retry = await self.counter.hit(checks)
        except (StorageError, TimeoutError, OSError, aioredis.RedisError) as exc:
            self._storage_failed(exc)
            return
        if self._storage_down_until:
            self._storage_down_until = 0.0
            log.info("rate limit storage is back")
        refused = [(check, seconds) for check, seconds in zip(checks, retry, strict=True) if seconds]
        if refused:
            self.metrics.rate_limited.labels(scope=refused[0][0].scope).inc()
            raise RateLimited(max(seconds for _, seconds in refused))

    def _storage_failed(self, exc: BaseException) -> None:
        self.metrics.rate_limit_storage_errors.inc()
        if not self._storage_down_until:
            log.warning(
                "rate limit storage failed; requests are not limited until it answers",
                extra={"error": type(exc).__name__, "retry_in_s": STORAGE_BACKOFF_SECONDS},
            )
        self._storage_down_until = time.monotonic() + STORAGE_BACKOFF_SECONDS


@contextlib.asynccontextmanager
async def open_request_limiter(settings: Settings, metrics: HubMetrics) -> AsyncIterator[RequestLimiter]:
    """Redis (one server or a cluster) when REDIS_URL is set, its connections closed on exit; memory otherwise."""
    if not settings.redis_url:
        yield RequestLimiter(MemoryLimitCounter(settings.rate_limit_strategy), settings, metrics)
        return
    counter = RedisLimitCounter(
        settings.redis_url,
        key_prefix=f"{settings.rate_limit_key_prefix}:ratelimit",
        strategy=settings.rate_limit_strategy,
        connections=settings.rate_limit_redis_connections,
    )
    try:
        yield RequestLimiter(counter, settings, metrics)
    finally:
        await counter.close()
