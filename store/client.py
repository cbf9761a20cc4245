"""The one module that owns the MongoDB client (Motor today, PyMongo's async client later)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection, AsyncIOMotorDatabase
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, ExecutionTimeout, ServerSelectionTimeoutError
from pymongo.monitoring import CommandListener

# Errors that mean "the database did not answer", as opposed to a bad request.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure, ExecutionTimeout, ServerSelectionTimeoutError)

Database = AsyncIOMotorDatabase[dict[str, Any]]
Collection = AsyncIOMotorCollection[dict[str, Any]]


def _options(timeout_seconds: float, event_listeners: Sequence[CommandListener]) -> dict[str, Any]:
    timeout_ms = int(timeout_seconds * 1000)
    return {
        "tz_aware": True,
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "socketTimeoutMS": timeout_ms * 2,
        "timeoutMS": timeout_ms,
        "retryWrites": False,
        "appname": "market-hub",
        "event_listeners": list(event_listeners),
    }


def connect(
    url: str, *, timeout_seconds: float, event_listeners: Sequence[CommandListener] = ()
) -> AsyncIOMotorClient[dict[str, Any]]:
    """A client whose operations give up within `timeout_seconds` when the server is gone.
    `event_listeners`: PyMongo command listeners (tests and bench count the commands sent)."""
    return AsyncIOMotorClient(url, **_options(timeout_seconds, event_listeners))


def connect_pymongo_async(
    url: str, *, timeout_seconds: float, event_listeners: Sequence[CommandListener] = ()
) -> AsyncMongoClient[dict[str, Any]]:
    """BENCH ONLY (bench/order_path.py), never used by the product: PyMongo's async client with the
    same options, so the move off Motor (deprecated upstream) can be decided on measured figures.
    The order path's store code runs on it unchanged; two calls differ from Motor (`aggregate`
    and `close` are coroutines there), so analytics and shutdown would need care before a switch."""
    return AsyncMongoClient(url, **_options(timeout_seconds, event_listeners))


async def ping(db: Database) -> None:
    await db.command("ping")
