"""The realtime engine of one instance, opened and closed with the application."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hub.metrics import HubMetrics
from hub.realtime.history import History
from hub.realtime.publisher import BackgroundEmitter, Publisher
from hub.realtime.redis_manager import HubRedisManager
from hub.realtime.server import HubServer
from hub.realtime.stats import StatsPusher, StatsSource
from hub.settings import Settings
from store.client import UNAVAILABLE_ERRORS, Database
from store.events import EventLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Realtime:
    server: HubServer
    events: EventLog
    history: History
    publisher: Publisher
    stats: StatsPusher
    metrics: HubMetrics
    settings: Settings


class ServerEmitter:
    """Emits through the server's manager: local clients at once, other instances via Redis."""

    def __init__(self, server: HubServer) -> None:
        self.server = server

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        await self.server.emit(event, data, room=room, namespace=namespace)


def event_log(settings: Settings, db: Database) -> EventLog:
    return EventLog(db, max_events=settings.event_history_size, max_age=timedelta(hours=settings.event_history_hours))


@contextlib.asynccontextmanager
async def open_realtime(
    settings: Settings, server: HubServer, db: Database, stats_source: StatsSource, metrics: HubMetrics
) -> AsyncIterator[Realtime]:
    events = event_log(settings, db)
    try:
        await events.create_indexes()
    except UNAVAILABLE_ERRORS:
        # The history works without them; the next start creates them.
        log.warning("database unavailable: event history indexes not created")
    background = BackgroundEmitter(ServerEmitter(server))
    publisher = Publisher(events, background)
    publisher.published_observers.append(lambda event: metrics.events_published.labels(event=event).inc())
    publisher.failure_observers.append(lambda event: metrics.events_publish_failed.labels(event=event).inc())
    background.failure_observers.append(lambda event: metrics.events_publish_failed.labels(event=event).inc())
    server.slow_client_observers.append(lambda ns: metrics.slow_client_disconnects.labels(namespace=ns).inc())
    metrics.socket_handshakes_refused.count_from(lambda: server.handshakes.refused)
    metrics.socket_handshakes_waiting.set_function(lambda: server.handshakes.waiting)
    manager = server.manager
    if isinstance(manager, HubRedisManager):
        manager.publish_failure_observers.append(
            lambda: metrics.events_publish_failed.labels(event="redis_publish").inc()
        )
        metrics.redis_shared_messages.count_from(lambda: manager.shared_received)
        metrics.redis_room_messages.count_from(lambda: manager.room_received)
    stats = StatsPusher(server, stats_source, interval=settings.stats_interval_seconds)
    if not server.manager_initialized:
        # Start listening to Redis now, not at the first connection: stats need the events.
        server.manager_initialized = True
        manager.initialize()
    background.start()
    try:
        yield Realtime(server, events, History(events), publisher, stats, metrics, settings)
    finally:
        await background.close()
        await stats.close()
        if isinstance(manager, HubRedisManager):
            await manager.aclose()
