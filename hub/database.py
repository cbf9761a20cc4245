"""Opening the system of record for a settings object: the embedded server or MONGODB_URL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

from hub.errors import DatabaseUnavailable
from hub.settings import Settings
from store.client import UNAVAILABLE_ERRORS, connect
from store.database import Store
from store.embedded import EmbeddedMongo, running_url

log = logging.getLogger(__name__)


class DatabaseUnreachable(Exception):
    """The database did not answer (the message says which, without credentials)."""


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """The one place where the driver's "the database did not answer" becomes a hub error (503 UNAVAILABLE):
    around every REST handler (handlers/middleware.py) and the Socket.IO handlers' domain calls."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable() from exc


@contextlib.asynccontextmanager
async def open_store(settings: Settings, *, one_shot: bool = False) -> AsyncIterator[Store]:
    """The store, with indexes in place (or being put in place once the database answers).

    `one_shot` (a command such as create-admin, not the server): in the embedded mode, use the
    embedded server a running hub has started on the same data, if any; and when the database does
    not answer, raise DatabaseUnreachable instead of starting anyway."""
    data_dir = settings.data_dir.resolve()
    url = settings.mongodb_url or (running_url(data_dir) if one_shot else None)
    embedded = EmbeddedMongo(data_dir) if url is None else None
    if embedded is not None:
        try:
            url = await embedded.start()
        except RuntimeError as exc:
            raise DatabaseUnreachable(f"the embedded database did not start: {exc}") from None
    assert url is not None
    client = connect(url, timeout_seconds=settings.db_timeout_seconds)
    store = Store(client[settings.mongodb_db])
    index_task: asyncio.Task[None] | None = None
    try:
        try:
            await store.create_indexes()
        except UNAVAILABLE_ERRORS:
            if one_shot:
                raise DatabaseUnreachable(f"the database at {_without_credentials(url)} did not answer") from None
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


def _without_credentials(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
