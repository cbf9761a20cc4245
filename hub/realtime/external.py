"""Publishing order events from outside the hub (a worker, a script, a cron job).

The event takes the same path as one published by a hub instance (hub/realtime/publisher.py):
numbered and stored in the stream history in one write, then emitted on the hub's Redis
channel (python-socketio's AsyncRedisManager in write-only mode), which every instance
delivers to its clients. Clients that miss it (Redis down, not connected) recover it from the
history like any other event.

    async with ExternalPublisher(load_settings()) as publisher:
        await publisher.order_changed(order, previous_status)

or, for one event: `await publish_order_event(settings, order, previous_status=...)`.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from hub.metrics import HubMetrics
from hub.realtime.engine import event_log
from hub.realtime.publisher import Publisher
from hub.realtime.redis_manager import HubRedisManager, redis_manager
from hub.settings import Settings, SettingsError
from store.client import connect
from store.models import Order, OrderStatus

log = logging.getLogger(__name__)


class ManagerEmitter:
    def __init__(self, manager: HubRedisManager | None) -> None:
        self.manager = manager

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        if self.manager is not None:
            await self.manager.emit(event, data, namespace=namespace, room=room)


class ExternalPublisher:
    """An order listener for processes other than the hub: same streams, history (and numbering), channel."""

    def __init__(self, settings: Settings) -> None:
        if not settings.mongodb_url:
            raise SettingsError("MONGODB_URL: required to publish events from outside the hub")
        if not settings.redis_url:
            log.warning("REDIS_URL not set: events go to the history only; clients get them on their next replay")
        self.settings = settings
        self.client = connect(settings.mongodb_url, timeout_seconds=settings.db_timeout_seconds)
        # Counted in a registry of its own: this process serves no /metrics.
        self.metrics = HubMetrics()
        self.manager = redis_manager(settings, self.metrics, write_only=True) if settings.redis_url else None
        events = event_log(settings, self.client[settings.mongodb_db])
        self.publisher = Publisher(events, ManagerEmitter(self.manager), self.metrics)

    @property
    def emit_failures(self) -> int:
        """Publishes python-socketio gave up on (Redis down); the history still has them."""
        return self.manager.publish_failures if self.manager is not None else 0

    async def order_created(self, order: Order) -> None:
        await self.publisher.order_created(order)

    async def order_changed(self, order: Order, previous_status: OrderStatus) -> None:
        await self.publisher.order_changed(order, previous_status)

    async def close(self) -> None:
        if self.manager is not None:
            await self.manager.aclose()
        self.client.close()

    async def __aenter__(self) -> ExternalPublisher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def publish_order_event(settings: Settings, order: Order, previous_status: OrderStatus | None = None) -> None:
    """One order event from outside: `order:created` without previous_status, else `order:updated`."""
    async with ExternalPublisher(settings) as publisher:
        if previous_status is None:
            await publisher.order_created(order)
        else:
            await publisher.order_changed(order, previous_status)
