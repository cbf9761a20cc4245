"""The composition root: builds the aiohttp application from a Settings object."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import redis.asyncio as aioredis
from aiohttp import web

from auth.tokens import TokenIssuer
from handlers import analytics, markets, orders, products, service, users, webhooks
from handlers.catalog_namespace import CatalogNamespace
from handlers.cors import add_cors
from handlers.dashboard_namespace import DashboardNamespace
from handlers.middleware import error_envelope, rate_limit, request_context
from handlers.openapi import build_spec
from handlers.orders_namespace import OrdersNamespace
from handlers.pages import add_page_routes
from handlers.security_headers import add_security_headers
from hub.accounts import Accounts
from hub.analytics import Analytics
from hub.catalog import Catalog
from hub.clock import Clock, SystemClock
from hub.database import open_store
from hub.drain import Drain
from hub.keys import (
    ReadinessCheck,
    accounts_key,
    analytics_key,
    catalog_feed_key,
    catalog_key,
    drain_key,
    email_notices_key,
    metrics_key,
    order_follow_up_key,
    order_placing_key,
    order_reader_key,
    order_status_key,
    order_sweeper_key,
    readiness_checks_key,
    realtime_key,
    request_limiter_key,
    revocations_key,
    settings_key,
    socketio_key,
    store_key,
    user_admin_key,
    webhook_clock_key,
    webhook_sender_key,
    webhooks_key,
)
from hub.metrics import HubMetrics
from hub.notices import EmailNotices
from hub.order_events import OrderListener
from hub.orders.cleanup import MarkerCleanup
from hub.orders.followup import OrderFollowUp
from hub.orders.placing import OrderPlacing
from hub.orders.reading import OrderReader
from hub.orders.status import OrderStatusChanges
from hub.orders.sweeper import OrderSweeper
from hub.ratelimit import open_request_limiter
from hub.realtime.catalog import CatalogPusher
from hub.realtime.engine import open_realtime
from hub.realtime.revocation import Revocations
from hub.realtime.server import build_server
from hub.settings import Settings
from hub.user_admin import UserAdmin
from hub.webhooks.endpoints import Webhooks
from hub.webhooks.outbox import DeliveryOutbox
from hub.webhooks.schedule import RetrySchedule
from hub.webhooks.sender import WebhookSender

MAX_BODY_BYTES = 1024 * 1024
VERSION = "1.0.0"
READY_TIMEOUT_SECONDS = 2
API_MODULES = (service, users, markets, products, orders, analytics, webhooks)
log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    async with open_store(settings) as store:
        app[store_key] = store
        tokens = TokenIssuer(settings.secret, settings.jwt_algorithm, settings.token_lifetime)
        app[accounts_key] = Accounts(store.users, tokens)
        # Pushes through the Socket.IO server made in create_app (its manager: Redis when configured).
        feed = CatalogPusher(app[socketio_key], store.products, interval=settings.stats_interval_seconds)
        app[catalog_feed_key] = feed
        revocations = app[revocations_key]
        app[catalog_key] = Catalog(store.markets, store.products, store.users, store.orders, revocations, changes=feed)
        app[user_admin_key] = UserAdmin(store.users, revocations)
        app[analytics_key] = Analytics(store)
        yield
        await feed.close()


async def _orders(app: web.Application) -> AsyncIterator[None]:
    """The order services, once the publisher they hand events to exists; the sweeper last.
    The sweeper is safe to run on every instance."""
    settings, store, clock = app[settings_key], app[store_key], SystemClock()
    notices = None
    if settings.email_service_url:
        notices = EmailNotices(
            url=settings.email_service_url, sender=settings.email_sender, users=store.users, markets=store.markets
        )
        app[email_notices_key] = notices
        app[metrics_key].email_failures.count_from(lambda: notices.failures if notices else 0)
    # Listeners hear of every order write: the storefronts' live stock, and the email notices when configured.
    listeners: list[OrderListener] = [app[catalog_feed_key], *([notices] if notices else [])]
    cleanup = MarkerCleanup(store)
    follow_up = OrderFollowUp(store, publisher=app[realtime_key].publisher, listeners=listeners,
                              webhook_deliveries=_webhooks(app, notices), cleanup=cleanup)  # fmt: skip
    reader = OrderReader(store)
    status_changes = OrderStatusChanges(store, reader, follow_up, clock=clock)
    sweeper = OrderSweeper(
        store,
        status_changes,
        follow_up,
        clock=clock,
        confirm_timeout=timedelta(minutes=settings.order_confirm_timeout_minutes),
    )
    app[order_follow_up_key] = follow_up
    app[order_placing_key] = OrderPlacing(store, follow_up, cleanup, clock=clock)
    app[order_reader_key] = reader
    app[order_status_key] = status_changes
    app[order_sweeper_key] = sweeper
    cleanup.start()
    task = asyncio.create_task(sweeper.run(settings.order_sweep_interval_seconds))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await cleanup.close()
    if notices is not None:
        await notices.close()


def _webhooks(app: web.Application, notices: EmailNotices | None) -> DeliveryOutbox:
    """The webhook endpoints service and sender (hub/webhooks/); the deliveries' maker, for the follow-up."""
    settings, store, clock = app[settings_key], app[store_key], app[webhook_clock_key]
    if settings.webhook_allow_insecure:
        log.warning("WEBHOOK_ALLOW_INSECURE=1: webhooks may go to http:// and to loopback/private addresses "
                    "(development and tests only)")  # fmt: skip
    schedule = RetrySchedule(settings.webhook_retry_scale)
    sender = WebhookSender(
        store.webhook_endpoints, store.webhook_deliveries, schedule, app[metrics_key],
        allow_insecure=settings.webhook_allow_insecure, notifier=notices, clock=clock,
        poll_seconds=min(1.0, max(0.2, 5 * settings.webhook_retry_scale)),
    )  # fmt: skip
    app[webhook_sender_key] = sender
    app[webhooks_key] = Webhooks(store.markets, store.webhook_endpoints, store.webhook_deliveries,
                                 allow_insecure=settings.webhook_allow_insecure, wake_sender=sender.wake,
                                 clock=clock)  # fmt: skip
    return DeliveryOutbox(store.webhook_endpoints, store.webhook_deliveries, app[realtime_key].events,
                          schedule=schedule, created=sender.wake)  # fmt: skip


async def _webhook_sender(app: web.Application) -> AsyncIterator[None]:
    """Sends due webhook deliveries; safe to run on every instance (each delivery under a lease)."""
    sender = app[webhook_sender_key]
    task = asyncio.create_task(sender.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await sender.close()


async def _realtime(app: web.Application) -> AsyncIterator[None]:
    """The event history, publisher and live stats around the Socket.IO server made in create_app."""
    settings, store = app[settings_key], app[store_key]
    stats_source = app[analytics_key].market_stats
    async with open_realtime(settings, app[socketio_key], store.db, stats_source, app[metrics_key]) as realtime:
        app[realtime_key] = realtime
        app[socketio_key].emit_observers.append(app[metrics_key].count_delivery)
        yield


async def _close_sockets(app: web.Application) -> None:
    # Before aiohttp waits for open handlers: WebSocket handlers only end when their client goes.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(app[socketio_key].shutdown(), timeout=3)


async def _start_drain(app: web.Application) -> None:
    """hub/serving.py has started it already; under other runners (tests) this runs the drain hooks."""
    await app[drain_key].start()


async def _request_limiter(app: web.Application) -> AsyncIterator[None]:
    async with open_request_limiter(app[settings_key], app[metrics_key]) as limiter:
        app[request_limiter_key] = limiter
        yield


async def _readiness(app: web.Application) -> AsyncIterator[None]:
    """/ready answers 503 while the database, or a configured Redis, does not answer (fan-out and shared limits
    need it)."""
    checks: dict[str, ReadinessCheck] = {"database": app[store_key].ping}
    url = app[settings_key].redis_url
    if url is None:
        app[readiness_checks_key] = checks
        yield
        return
    redis = aioredis.Redis.from_url(url, socket_connect_timeout=READY_TIMEOUT_SECONDS,
                                    socket_timeout=READY_TIMEOUT_SECONDS)  # fmt: skip

    async def ping() -> None:
        await redis.ping()

    app[readiness_checks_key] = {**checks, "redis": ping}
    yield
    await redis.aclose()


def create_app(settings: Settings, *, webhook_clock: Clock | None = None) -> web.Application:
    """`webhook_clock`: what time it is for webhook secrets' overlap after a rotation (tests move it)."""
    settings = settings.ensure_secret()
    middlewares = [request_context, error_envelope, rate_limit]
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[settings_key] = settings
    app[metrics_key] = HubMetrics()
    app[webhook_clock_key] = webhook_clock or SystemClock()
    app[drain_key] = Drain()
    app.on_shutdown.append(_start_drain)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_request_limiter)
    app.cleanup_ctx.append(_readiness)
    app.cleanup_ctx.append(_realtime)
    app.cleanup_ctx.append(_orders)
    app.cleanup_ctx.append(_webhook_sender)
    # First thing on shutdown (before requests in flight are waited for): clients reconnect elsewhere.
    app[drain_key].hooks.append(lambda: _close_sockets(app))
    for module in API_MODULES:
        app.router.add_routes(module.routes.table)
    operations = [operation for module in API_MODULES for operation in module.routes.operations]
    app[service.openapi_spec_key] = build_spec(operations, title="Market Hub API", version=VERSION)
    service.add_docs_routes(app)
    add_page_routes(app)
    add_cors(app, settings.cors_origins)  # last: it covers the routes added before it
    # Socket.IO answers its own CORS and Origin checks (handlers/cors.py leaves /socket.io to it).
    sio = build_server(settings)
    sio.register_namespace(DashboardNamespace(app))
    sio.register_namespace(OrdersNamespace(app))
    sio.register_namespace(CatalogNamespace(app))
    sio.attach(app)
    app[socketio_key] = sio
    app[revocations_key] = Revocations(sio)
    add_security_headers(app)
    return app
