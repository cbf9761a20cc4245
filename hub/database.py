"""Opening the system of record for a settings object: the embedded server or MONGODB_URL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from hub.settings import Settings
from store.client import UNAVAILABLE_ERRORS, connect
from store.database import Store
from store.embedded import EmbeddedMongo

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The store, with indexes in place (or being put in place once the database answers)."""
    embedded = EmbeddedMongo(settings.data_dir.resolve()) if settings.embedded else None
    url = await embedded.start() if embedded else settings.mongodb_url
    assert url is not None
    client = connect(url, timeout_seconds=settings.db_timeout_seconds)
    store = Store(client[settings.mongodb_db])
    index_task: asyncio.Task[None] | None = None
    try:
        try:
            await store.create_indexes()
        except UNAVAILABLE_ERRORS:
            # Start anyway: requests answer 503 until the database is back, /ready says so,
            # and the indexes are created as soon as it answers.
            log.warning("database unavailable at start; creating indexes in the background")
            index_task = asyncio.create_task(_create_indexes_when_up(store))
        yield store
    finally:
        if index_task is not None:
            index_task.cancel()
        client.close()
        if embedded is not None:
            await embedded.stop()


async def _create_indexes_when_up(store: Store) -> None:
    delay = 1.0
    while True:
        await asyncio.sleep(delay)
        try:
            await store.create_indexes()
        except UNAVAILABLE_ERRORS:
            delay = min(delay * 2, 30)
            continue
        log.info("indexes created")
        return
