"""Rate limits on the `limits` library: per client IP, per signed-in user and, for sign-in, per email.

With REDIS_URL the counters live in Redis under RATE_LIMIT_KEY_PREFIX, so every instance that shares
the prefix shares the limits; without it they live in this process's memory. When Redis fails the
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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
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


class RequestLimiter:
    """Counts a request against every limit of the identities it carries; raises RateLimited when one is spent."""

    def __init__(self, storage: Storage, settings: Settings, metrics: HubMetrics) -> None:
        self.storage = storage
        self.strategy = _STRATEGIES[settings.rate_limit_strategy](storage)
        self.metrics = metrics
        per_client = [
            RateLimitItemPerMinute(settings.rate_limit_per_minute),
            RateLimitItemPerHour(settings.rate_limit_per_hour),
        ]
        self.limits: dict[str, list[RateLimitItem]] = {
            IP: per_client,
            USER: per_client,
            EMAIL: [
                RateLimitItemPerMinute(settings.login_rate_limit_per_minute),
                RateLimitItemPerHour(settings.login_rate_limit_per_hour),
            ],
        }
        self._storage_down_until = 0.0

    async def hit(self, identities: Mapping[str, str]) -> None:
        """Count one request for each (scope, identity); RateLimited(retry_after) if any limit is exceeded."""
        checks = [
            _Check(scope, identity, item) for scope, identity in identities.items() for item in self.limits[scope]
        ]
        if not checks or time.monotonic() < self._storage_down_until:
            return
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
                allowed = await asyncio.gather(
                    *(self.strategy.hit(check.item, check.scope, check.identity) for check in checks)
                )
                refused = [check for check, ok in zip(checks, allowed, strict=True) if not ok]
                retry_after = max([await self._retry_after(check) for check in refused], default=0)
        except (StorageError, TimeoutError, OSError, aioredis.RedisError) as exc:
            self._storage_failed(exc)
            return
        if self._storage_down_until:
            self._storage_down_until = 0.0
            log.info("rate limit storage is back")
        if refused:
            self.metrics.rate_limited.labels(scope=refused[0].scope).inc()
            raise RateLimited(retry_after)

    async def _retry_after(self, check: _Check) -> int:
        stats = await self.strategy.get_window_stats(check.item, check.scope, check.identity)
        return max(1, math.ceil(stats.reset_time - time.time()))

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
    """Redis storage when REDIS_URL is set (its connections closed on exit), memory otherwise."""
    if not settings.redis_url:
        yield RequestLimiter(MemoryStorage(), settings, metrics)
        return
    pool = aioredis.ConnectionPool.from_url(
        settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
    )
    storage = RedisStorage(
        "async+" + settings.redis_url,
        implementation="redispy",
        key_prefix=f"{settings.rate_limit_key_prefix}:ratelimit",
        wrap_exceptions=True,
        connection_pool=pool,  # type: ignore[arg-type]  # passed through to redis.asyncio.Redis
    )
    try:
        yield RequestLimiter(storage, settings, metrics)
    finally:
        await pool.disconnect()
