"""Rate limits on the `limits` library: per client IP, per signed-in user and, for sign-in, per email.

With REDIS_URL the counters live in Redis under RATE_LIMIT_KEY_PREFIX, so every instance that shares
the prefix shares the limits, and all the limits of one request are counted in ONE round trip (one
script); without it they live in this process's memory (no I/O). When Redis fails the
check is skipped (fail open: logged and counted) rather than refusing every request, and Redis is
left alone for a few seconds so an outage does not add a timeout to each request.
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

from hub.errors import RateLimited
from hub.metrics import HubMetrics
from hub.settings import Settings

log = logging.getLogger(__name__)

# Scopes: who a limit counts against.
IP, USER, EMAIL = "ip", "user", "email"
REDIS_TIMEOUT_SECONDS = 0.5
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


# Every limit of one request in ONE Redis round trip. Per key, the same list (moving window: one
# timestamp per hit, newest first, trimmed to the limit) or counter (fixed window) as the `limits`
# library keeps under the same names, so its strategies' semantics are kept. Returns, per key, 0 when
# the hit was counted, else the seconds until the limit lets a request through again.
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
    """All of a request's checks in one script call: one round trip, whatever their number."""

    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, strategy: str) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.strategy = strategy
        self.script = redis.register_script(_HIT_ALL)

    async def hit(self, checks: Sequence[_Check]) -> list[int]:
        keys = [f"{self.key_prefix}:{check.item.key_for(check.scope, check.identity)}" for check in checks]
        args: list[float | int | str] = [time.time(), self.strategy]
        for check in checks:
            args += [check.item.amount, check.item.get_expiry()]
        return [int(result) for result in await self.script(keys=keys, args=args)]


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
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
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
    """Redis when REDIS_URL is set (its connections closed on exit), memory otherwise."""
    if not settings.redis_url:
        yield RequestLimiter(MemoryLimitCounter(settings.rate_limit_strategy), settings, metrics)
        return
    # No socket timeout: redis-py 8 would wrap every write in asyncio.wait_for, a new task per request
    # on Python 3.11 (profiled: bench/README.md); RequestLimiter.hit bounds the whole call instead.
    redis = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=None
    )
    counter = RedisLimitCounter(
        redis, key_prefix=f"{settings.rate_limit_key_prefix}:ratelimit", strategy=settings.rate_limit_strategy
    )
    try:
        yield RequestLimiter(counter, settings, metrics)
    finally:
        await redis.aclose()
