"""Which redis-py client speaks to REDIS_URL: a plain one for a single Redis, RedisCluster for a cluster node.

Operators give one URL either way; the node there says whether it is part of a cluster (`INFO cluster`).
The plain client has no socket timeout: with one, redis-py 8 wraps every socket write in
`asyncio.wait_for`, a new task per command on Python 3.11 (profiled: bench/README.md), so callers bound
their calls with `asyncio.timeout` instead (a cancelled read drops its connection: no reply is left
for the next command). The cluster client keeps the options' socket timeout.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster


async def connect(url: str, **options: Any) -> aioredis.Redis | RedisCluster:
    """A client for `url`: RedisCluster (its slot map loaded) when the node has cluster mode on, else Redis.
    Callers bound it with `asyncio.timeout` (what it opened is closed when cancelled)."""
    plain = aioredis.Redis.from_url(url, **{**options, "socket_timeout": None})
    try:
        info = await plain.info("cluster")
    except BaseException:
        await plain.aclose()
        raise
    if not info.get("cluster_enabled"):
        return plain
    await plain.aclose()
    cluster = RedisCluster.from_url(url, **options)
    try:
        await cluster.initialize()
    except BaseException:
        await cluster.aclose()
        raise
    return cluster
