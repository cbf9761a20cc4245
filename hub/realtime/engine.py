"""The realtime engine of one instance, opened and closed with the application."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hub.metrics import HubMetrics
from hub.realtime.history import History
from hub.realtime.publisher import BackgroundEmitter, Emit, Publisher
from hub.realtime.redis_manager import HubRedisManager
from hub.realtime.server import HubServer
from hub.realtime.stats import StatsPusher
from hub.settings import Settings
from store.client import UNAVAILABLE_ERRORS, Database
from store.events import EventLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Realtime:
    """The realtime engine of one instance: built by `build_realtime`, started last with the other
    background tasks (`start`), stopped first (`stop`)."""

    server: HubServer
    events: EventLog
    history: History
    publisher: Publisher
    stats: StatsPusher
    metrics: HubMetrics
    settings: Settings
    emitter: BackgroundEmitter

    async def start(self) -> None:
        try:
            await self.events.create_indexes()
        except UNAVAILABLE_ERRORS:
            # The history works without them; the next start creates them.
            log.warning("database unavailable: event history indexes not created")
        if not self.server.manager_initialized:
            # Listen to Redis from the start, not from the first connection: stats need the events.
            self.server.manager_initialized = True
            self.server.manager.initialize()
        self.emitter.start()

    async def stop(self) -> None:
        await self.emitter.close()
        await self.stats.close()
        if isinstance(self.server.manager, HubRedisManager):
            await self.server.manager.aclose()


class ServerEmitter:
    """Emits through the server's manager: local clients at once, other instances via Redis."""

    def __init__(self, server: HubServer) -> None:
        self.server = server

    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        await self.server.emit(event, data, room=room, namespace=namespace)

    async def emit_many(self, emits: Sequence[Emit]) -> None:
        """Each emit in turn; their Redis publishes in one round trip at the end."""
        manager = self.server.manager
        together = manager.publishing_together() if isinstance(manager, HubRedisManager) else contextlib.nullcontext()
        async with together:
            for event, data, namespace, room in emits:
                await self.server.emit(event, data, room=room, namespace=namespace)


def event_log(settings: Settings, db: Database) -> EventLog:
    return EventLog(db, max_events=settings.event_history_size, max_age=timedelta(hours=settings.event_history_hours))


def build_realtime(
    settings: Settings, server: HubServer, db: Database, stats: StatsPusher, metrics: HubMetrics
) -> Realtime:
    """The event history, the publisher and its background emitter around the Socket.IO server; nothing runs
    until `Realtime.start`."""
    events = event_log(settings, db)
    emitter = BackgroundEmitter(ServerEmitter(server), metrics)
    publisher = Publisher(events, emitter, metrics)
    return Realtime(server, events, History(events), publisher, stats, metrics, settings, emitter)
