"""Per-room Redis channels: Redis 7 sharded pub/sub (SSUBSCRIBE / SPUBLISH).

An instance subscribes to a room's channel while the room has at least one member connected to
it, and drops the subscription with the last one (the "dynamic" mode of @socket.io/redis-adapter's
sharded adapter), so its Redis traffic follows its own clients, not the whole platform's.

The same code serves one Redis and a Redis Cluster. A sharded channel lives on the node that owns
its hash slot: in a cluster SPUBLISH goes through redis-py's RedisCluster (it routes by slot) and
each node that owns a subscribed channel gets one subscriber connection of this instance. On one
Redis there is one node. Whether REDIS_URL points at a cluster is asked once (`INFO cluster`).

`want()` and `drop()` are synchronous (called from the Socket.IO manager's room bookkeeping); one
worker task turns the wanted set into SSUBSCRIBE/SUNSUBSCRIBE commands, and `ready()` resolves when
Redis confirmed a subscription, so a joining client reads its history only once live events reach
this instance: whatever was published before is in the history, whatever after arrives live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from hub import redis_clients

log = logging.getLogger(__name__)

RETRY_SECONDS = (0.1, 0.5, 1, 2, 5)
# On one Redis the publishing client has no socket timeout of its own: with one, redis-py 8 wraps
# every socket write in `asyncio.wait_for`, i.e. a new task per command on Python 3.11, which the
# order path paid on each publish (profiled: bench/README.md). These bound a publish, or the cluster
# check, as a whole instead; a cancelled read drops its connection, so no reply is left for the next
# command.
PUBLISH_TIMEOUT_SECONDS = 5.0
DETECT_TIMEOUT_SECONDS = 5.0


def node_url(url: str, host: str, port: int) -> str:
    """REDIS_URL with another host and port (credentials, TLS and options kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class NodeLink:
    """This instance's subscriber connection to one Redis node, and the task that reads it."""

    def __init__(self, url: str, options: dict[str, Any], owner: RoomChannels) -> None:
        self.client = aioredis.Redis.from_url(url, **options)
        self.pubsub: PubSub = self.client.pubsub(ignore_subscribe_messages=False)
        self.owner = owner
        self.has_subscriptions = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    async def subscribe(self, channel: str) -> None:
        await self.pubsub.ssubscribe(channel)
        self.has_subscriptions.set()

    async def unsubscribe(self, channel: str) -> None:
        await self.pubsub.sunsubscribe(channel)

    async def _read(self) -> None:
        attempt = 0
        while True:
            if not self.pubsub.subscribed:
                self.has_subscriptions.clear()
                await self.has_subscriptions.wait()
            try:
                async for message in self.pubsub.listen():
                    attempt = 0
                    self.owner.handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken connection: reconnect and resubscribe
                self.owner.link_failed(exc)
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py's untyped method
        with contextlib.suppress(Exception):
            await self.client.aclose()


class RoomChannels:
    def __init__(self, url: str, *, redis_options: dict[str, Any], on_message: Callable[[bytes], None]) -> None:
        self.url = url
        self.redis_options = redis_options
        self.on_message = on_message
        self.wanted: set[str] = set()
        self.subscribed: set[str] = set()  # confirmed by Redis
        self.failures = 0  # Redis errors on the subscriber side
        # Set by a failure, cleared by the next confirmation: while Redis is down nobody waits for one.
        self.down = False
        self._requested: dict[str, NodeLink] = {}  # channel -> the link its SSUBSCRIBE went to
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._links: dict[str, NodeLink] = {}  # node address -> link
        self._changed = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._cluster: RedisCluster | None = None
        self._plain: aioredis.Redis | None = None
        self._is_cluster: bool | None = None
        self._detecting = asyncio.Lock()

    # Called by the manager's room bookkeeping (synchronous)

    def want(self, channel: str) -> None:
        self.wanted.add(channel)
        self._changed.set()
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._run())

    def drop(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._changed.set()
        waiter = self._ready.pop(channel, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # whoever waited has left the room

    async def ready(self, channel: str, wait_seconds: float) -> bool:
        """Wait until Redis confirmed the subscription to `channel` (False after `wait_seconds`)."""
        if channel in self.subscribed:
            return True
        if self.down:
            return False
        waiter = self._ready.get(channel)
        if waiter is None:
            waiter = self._ready[channel] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(wait_seconds):
                await asyncio.shield(waiter)
        except TimeoutError:
            return False
        return True

    # Publishing

    async def publish(self, channel: str, message: str) -> int:
        """SPUBLISH to the node that owns the channel's slot; the number of subscribers reached."""
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            if await self._cluster_mode():
                assert self._cluster is not None
                return int(await self._cluster.spublish(channel, message))
            assert self._plain is not None
            return int(await self._plain.spublish(channel, message))

    async def publish_many(self, messages: list[tuple[str, str]]) -> None:
        """SPUBLISH each (channel, message), in the order given: on one Redis in one round trip (a
        pipeline, not a transaction); on a cluster one command each, as the channels' slots differ."""
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            if await self._cluster_mode():
                assert self._cluster is not None
                for channel, message in messages:
                    await self._cluster.spublish(channel, message)
                return
            assert self._plain is not None
            async with self._plain.pipeline(transaction=False) as pipe:
                for channel, message in messages:
                    pipe.spublish(channel, message)
                await pipe.execute()

    # Subscriber side

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "smessage":
            data = message.get("data")
            if isinstance(data, bytes):
                self.on_message(data)
        elif kind == "ssubscribe":
            self.down = False
            self.subscribed.add(name)
            waiter = self._ready.pop(name, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind == "sunsubscribe":
            self.subscribed.discard(name)
            if name in self.wanted and self._requested.get(name) is not None:
                # Not asked for: the slot moved to another node (cluster resharding). Route it again.
                self._requested.pop(name, None)
                self._changed.set()

    def link_failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.down = True
        for waiter in self._ready.values():
            if not waiter.done():
                waiter.set_result(None)  # nobody waits for a subscription while Redis is down
        self._ready.clear()
        log.warning("redis room channels: subscriber connection failed", extra={"error": type(exc).__name__})

    async def _run(self) -> None:
        attempt = 0
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self._apply()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis unreachable: try again, with backoff
                self.link_failed(exc)
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
                self._changed.set()

    async def _apply(self) -> None:
        for channel in [c for c in self._requested if c not in self.wanted]:
            link = self._requested.pop(channel)
            self.subscribed.discard(channel)
            await link.unsubscribe(channel)
        for channel in [c for c in self.wanted if c not in self._requested]:
            link = await self._link_for(channel)
            await link.subscribe(channel)
            self._requested[channel] = link

    async def _link_for(self, channel: str) -> NodeLink:
        url = self.url
        if await self._cluster_mode():
            assert self._cluster is not None
            node = self._cluster.get_node_from_key(channel)
            if node is None:
                raise ConnectionError(f"no cluster node owns the slot of {channel!r}")
            url = node_url(self.url, str(node.host), int(node.port))
        link = self._links.get(url)
        if link is None:
            link = self._links[url] = NodeLink(url, self.redis_options, self)
        return link

    async def _cluster_mode(self) -> bool:
        if self._is_cluster is None:
            async with self._detecting:
                if self._is_cluster is None:
                    await self._detect()
        return bool(self._is_cluster)

    async def _detect(self) -> None:
        # The plain client publishes with no socket timeout (see PUBLISH_TIMEOUT_SECONDS).
        async with asyncio.timeout(DETECT_TIMEOUT_SECONDS):
            client = await redis_clients.connect(self.url, **self.redis_options)
        if isinstance(client, RedisCluster):
            self._cluster, self._is_cluster = client, True
        else:
            self._plain, self._is_cluster = client, False

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        for link in self._links.values():
            await link.close()
        self._links.clear()
        for client in (self._cluster, self._plain):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
