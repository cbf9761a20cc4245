"""Typed application keys: how handlers reach their collaborators (filled in by the app factory)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.accounts import Accounts
from hub.catalog import Catalog
from hub.settings import Settings
from store.database import Store

settings_key = web.AppKey("settings", Settings)
store_key = web.AppKey("store", Store)
accounts_key = web.AppKey("accounts", Accounts)
catalog_key = web.AppKey("catalog", Catalog)

# Extra readiness checks by name (Redis, when configured): each an awaitable that raises when down.
ReadinessCheck = Callable[[], Awaitable[object]]
readiness_checks_key: web.AppKey[dict[str, ReadinessCheck]] = web.AppKey("readiness_checks")
