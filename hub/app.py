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
    engineio_requests_key,
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
from hub.realtime.delivery import MarketChanged
from hub.realtime.engine import build_realtime
from hub.realtime.revocation import Revocations
from hub.realtime.server import build_server
from hub.realtime.session_requests import SessionRequests
from hub.realtime.stats import StatsPusher
from hub.settings import Settings
from hub.user_admin import UserAdmin
from hub.webhooks.endpoints import Webhooks
from hub.webhooks.outbox import DeliveryOutbox
from hub.webhooks.schedule import RetrySchedule
from hub.webhooks.sender import WebhookSender
from store.database import Store

MAX_BODY_BYTES = 1024 * 1024
VERSION = "1.0.0"
READY_TIMEOUT_SECONDS = 2
API_MODULES = (service, users, markets, products, orders, analytics, webhooks)
log = logging.getLogger(__name__)


# The composition happens in three visible steps, each a cleanup context (closed in reverse order):
#   1. _resources: open what the services use (the database, Redis for limits and readiness);
#   2. _services: build every service, each given its collaborators in its constructor;
#   3. _background_tasks: start what runs on its own (event emitter, Redis listener, cleanup, sweeper, sender).
# The Socket.IO server is made in create_app, with the routes it adds.


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Step 1: the database, the request limiter's storage, the readiness checks."""
    settings = app[settings_key]
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(settings))
        app[store_key] = store
        app[request_limiter_key] = await stack.enter_async_context(open_request_limiter(settings, app[metrics_key]))
        app[readiness_checks_key] = await stack.enter_async_context(_readiness_checks(settings, store))
        yield


@contextlib.asynccontextmanager
async def _readiness_checks(settings: Settings, store: Store) -> AsyncIterator[dict[str, ReadinessCheck]]:
    """/ready answers 503 while the database, or a configured Redis, does not answer (fan-out and shared limits
    need it)."""
    checks: dict[str, ReadinessCheck] = {"database": store.ping}
    if settings.redis_url is None:
        yield checks
        return
    redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=READY_TIMEOUT_SECONDS,
                                    socket_timeout=READY_TIMEOUT_SECONDS)  # fmt: skip

    async def ping() -> None:
        await redis.ping()

    try:
        yield {**checks, "redis": ping}
    finally:
        await redis.aclose()


async def _services(app: web.Application) -> AsyncIterator[None]:
    """Step 2: every service, with its collaborators passed to its constructor (no setters, no lists
    filled afterwards). Nothing runs yet."""
    settings, store, metrics, sio = app[settings_key], app[store_key], app[metrics_key], app[socketio_key]
    revocations, clock = app[revocations_key], SystemClock()
    tokens = TokenIssuer(settings.secret, settings.jwt_algorithm, settings.token_lifetime)
    app[accounts_key] = Accounts(store.users, tokens)
    app[analytics_key] = analytics = Analytics(store)
    # Storefronts' live stock: pushed through the Socket.IO server (its manager: Redis when configured).
    feed = CatalogPusher(sio, store.products, interval=settings.stats_interval_seconds)
    app[catalog_feed_key] = feed
    app[catalog_key] = Catalog(store.markets, store.products, store.users, store.orders, revocations, changes=feed)
    app[user_admin_key] = UserAdmin(store.users, revocations)
    # Dashboards' live stats: told of each market's order events by the server's delivery (create_app).
    stats = StatsPusher(sio, analytics.market_stats, interval=settings.stats_interval_seconds)
    app[realtime_key] = realtime = build_realtime(settings, sio, store.db, stats, metrics)
    notices = _email_notices(app)
    sender = _webhook_sender(app, notices)
    # Listeners hear of every order write: the storefronts' live stock, and the email notices when configured.
    listeners: list[OrderListener] = [feed, *([notices] if notices else [])]
    cleanup = MarkerCleanup(store)
    follow_up = OrderFollowUp(store, publisher=realtime.publisher, listeners=listeners,
                              webhook_deliveries=_webhook_outbox(app, sender), cleanup=cleanup)  # fmt: skip
    reader = OrderReader(store)
    status_changes = OrderStatusChanges(store, reader, follow_up, clock=clock)
    app[order_follow_up_key] = follow_up
    app[order_placing_key] = OrderPlacing(store, follow_up, cleanup, clock=clock)
    app[order_reader_key] = reader
    app[order_status_key] = status_changes
    # Safe to run on every instance.
    app[order_sweeper_key] = OrderSweeper(
        store, status_changes, follow_up, clock=clock,
        confirm_timeout=timedelta(minutes=settings.order_confirm_timeout_minutes),
    )  # fmt: skip
    yield
    await sender.close()
    if notices is not None:
        await notices.close()
    await feed.close()


def _email_notices(app: web.Application) -> EmailNotices | None:
    settings, store = app[settings_key], app[store_key]
    if not settings.email_service_url:
        return None
    notices = EmailNotices(
        url=settings.email_service_url,
        sender=settings.email_sender,
        users=store.users,
        markets=store.markets,
        metrics=app[metrics_key],
    )
    app[email_notices_key] = notices
    return notices


def _webhook_sender(app: web.Application, notices: EmailNotices | None) -> WebhookSender:
    """The webhook sender (hub/webhooks/, its task started in step 3) and the endpoints service."""
    settings, store, clock = app[settings_key], app[store_key], app[webhook_clock_key]
    if settings.webhook_allow_insecure:
        log.warning("WEBHOOK_ALLOW_INSECURE=1: webhooks may go to http:// and to loopback/private addresses "
                    "(development and tests only)")  # fmt: skip
    sender = WebhookSender(
        store.webhook_endpoints, store.webhook_deliveries, RetrySchedule(settings.webhook_retry_scale),
        app[metrics_key], allow_insecure=settings.webhook_allow_insecure, notifier=notices, clock=clock,
        poll_seconds=min(1.0, max(0.2, 5 * settings.webhook_retry_scale)),
    )  # fmt: skip
    app[webhook_sender_key] = sender
    app[webhooks_key] = Webhooks(store.markets, store.webhook_endpoints, store.webhook_deliveries,
                                 allow_insecure=settings.webhook_allow_insecure, wake_sender=sender.wake,
                                 clock=clock)  # fmt: skip
    return sender


def _webhook_outbox(app: web.Application, sender: WebhookSender) -> DeliveryOutbox:
    """The deliveries' maker, for the order follow-up."""
    settings, store = app[settings_key], app[store_key]
    return DeliveryOutbox(store.webhook_endpoints, store.webhook_deliveries, app[realtime_key].events,
                          schedule=RetrySchedule(settings.webhook_retry_scale), created=sender.wake)  # fmt: skip


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    """Step 3, last: the realtime engine (history indexes, Redis listener, event emitter), the batched
    order cleanup, the order sweeper and the webhook sender; stopped first, in reverse."""
    settings, realtime = app[settings_key], app[realtime_key]
    await realtime.start()
    cleanup = app[order_placing_key].cleanup
    cleanup.start()
    sweeper = asyncio.create_task(app[order_sweeper_key].run(settings.order_sweep_interval_seconds))
    sender = asyncio.create_task(app[webhook_sender_key].run())
    yield
    for task in (sender, sweeper):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await cleanup.close()
    await realtime.stop()


def _stats_told(app: web.Application) -> MarketChanged:
    """The server's delivery tells the stats pusher (built in step 2) of each market's order events."""

    def market_changed(market_id: str) -> None:
        realtime = app.get(realtime_key)
        if realtime is not None:
            realtime.stats.market_changed(market_id)

    return market_changed


async def _close_sockets(app: web.Application) -> None:
    # Before aiohttp waits for open handlers: WebSocket handlers only end when their client goes.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(app[socketio_key].shutdown(), timeout=3)


async def _start_drain(app: web.Application) -> None:
    """hub/serving.py has started it already; under other runners (tests) this runs the drain hooks."""
    await app[drain_key].start()


def create_app(settings: Settings, *, webhook_clock: Clock | None = None) -> web.Application:
    """`webhook_clock`: what time it is for webhook secrets' overlap after a rotation (tests move it)."""
    settings = settings.ensure_secret()
    middlewares = [request_context, error_envelope, rate_limit]
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[settings_key] = settings
    app[metrics_key] = HubMetrics()
    app[webhook_clock_key] = webhook_clock or SystemClock()
    # First thing on shutdown (before requests in flight are waited for): clients reconnect elsewhere.
    app[drain_key] = Drain(hooks=[lambda: _close_sockets(app)])
    app.on_shutdown.append(_start_drain)
    app.cleanup_ctx.extend([_resources, _services, _background_tasks])
    for module in API_MODULES:
        app.router.add_routes(module.routes.table)
    operations = [operation for module in API_MODULES for operation in module.routes.operations]
    app[service.openapi_spec_key] = build_spec(operations, title="Market Hub API", version=VERSION)
    service.add_docs_routes(app)
    add_page_routes(app)
    add_cors(app, settings.cors_origins)  # last: it covers the routes added before it
    # Socket.IO answers its own CORS and Origin checks (handlers/cors.py leaves /socket.io to it).
    sio = build_server(settings, app[metrics_key], market_changed=_stats_told(app))
    sio.register_namespace(DashboardNamespace(app))
    sio.register_namespace(OrdersNamespace(app))
    sio.register_namespace(CatalogNamespace(app))
    sio.attach(app)
    app[socketio_key] = sio
    app[engineio_requests_key] = SessionRequests()
    app[revocations_key] = Revocations(sio)
    add_security_headers(app)
    return app
