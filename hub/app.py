"""The composition root: builds the aiohttp application from a Settings object."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from auth.tokens import TokenIssuer
from handlers import markets, products, service, users
from handlers.keys import accounts_key, catalog_key, settings_key, store_key
from handlers.middleware import error_envelope, request_context
from handlers.openapi import build_spec
from handlers.pages import add_page_routes
from hub.accounts import Accounts
from hub.catalog import Catalog
from hub.database import open_store
from hub.settings import Settings

MAX_BODY_BYTES = 1024 * 1024
VERSION = "1.0.0"
API_MODULES = (service, users, markets, products)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    async with open_store(settings) as store:
        app[store_key] = store
        tokens = TokenIssuer(settings.secret, settings.jwt_algorithm, settings.token_lifetime)
        app[accounts_key] = Accounts(store.users, tokens)
        app[catalog_key] = Catalog(store.markets, store.products)
        yield


def create_app(settings: Settings) -> web.Application:
    settings = settings.ensure_secret()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[request_context, error_envelope])
    app[settings_key] = settings
    app.cleanup_ctx.append(_database)
    for module in API_MODULES:
        app.router.add_routes(module.routes.table)
    operations = [operation for module in API_MODULES for operation in module.routes.operations]
    app[service.openapi_spec_key] = build_spec(operations, title="Market Hub API", version=VERSION)
    service.add_docs_routes(app)
    add_page_routes(app)
    return app
