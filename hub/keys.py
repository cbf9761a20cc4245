"""Typed application keys: how handlers reach their collaborators (filled in by the app factory)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.accounts import Accounts
from hub.analytics import Analytics
from hub.catalog import Catalog
from hub.clock import Clock
from hub.drain import Drain
from hub.metrics import HubMetrics
from hub.notices import EmailNotices
from hub.orders.followup import OrderFollowUp
from hub.orders.placing import OrderPlacing
from hub.orders.reading import OrderReader
from hub.orders.status import OrderStatusChanges
from hub.orders.sweeper import OrderSweeper
from hub.ratelimit import RequestLimiter
from hub.realtime.catalog import CatalogPusher
from hub.realtime.engine import Realtime
from hub.realtime.revocation import Revocations
from hub.realtime.server import HubServer
from hub.realtime.session_requests import SessionRequests
from hub.settings import Settings
from hub.user_admin import UserAdmin
from hub.webhooks.endpoints import Webhooks
from hub.webhooks.sender import WebhookSender
from store.database import Store

settings_key = web.AppKey("settings", Settings)
store_key = web.AppKey("store", Store)
accounts_key = web.AppKey("accounts", Accounts)
catalog_key = web.AppKey("catalog", Catalog)
# The order domain, one service per job (hub/orders/).
order_placing_key = web.AppKey("order_placing", OrderPlacing)
order_reader_key = web.AppKey("order_reader", OrderReader)
order_status_key = web.AppKey("order_status", OrderStatusChanges)
order_follow_up_key = web.AppKey("order_follow_up", OrderFollowUp)
order_sweeper_key = web.AppKey("order_sweeper", OrderSweeper)
# Storefronts' live stock (/catalog): told by the catalog and order rules what changed.
catalog_feed_key = web.AppKey("catalog_feed", CatalogPusher)
user_admin_key = web.AppKey("user_admin", UserAdmin)
analytics_key = web.AppKey("analytics", Analytics)
webhooks_key = web.AppKey("webhooks", Webhooks)
webhook_sender_key = web.AppKey("webhook_sender", WebhookSender)
# What time it is for webhook secrets' overlap after a rotation (create_app's `clock`; tests move it).
webhook_clock_key = web.AppKey("webhook_clock", Clock)
# Only when EMAIL_SERVICE_URL is set.
email_notices_key = web.AppKey("email_notices", EmailNotices)
# Made by the app factory before anything else, so every collaborator can be handed it.
metrics_key = web.AppKey("metrics", HubMetrics)
request_limiter_key = web.AppKey("request_limiter", RequestLimiter)
# Requests inside an Engine.IO session are not rate-limited, but one of each kind at a time (middleware).
engineio_requests_key = web.AppKey("engineio_requests", SessionRequests)
# Requests in flight and the hooks to run when shutdown starts (hub/serving.py).
drain_key = web.AppKey("drain", Drain)
# The Socket.IO server is made with the app; the engine around it once the database is open.
socketio_key = web.AppKey("socketio", HubServer)
realtime_key = web.AppKey("realtime", Realtime)
# Ends live connections on every instance (made with the Socket.IO server, handed to the domain).
revocations_key = web.AppKey("revocations", Revocations)

# Extra readiness checks by name (Redis, when configured): each an awaitable that raises when down.
ReadinessCheck = Callable[[], Awaitable[object]]
readiness_checks_key: web.AppKey[dict[str, ReadinessCheck]] = web.AppKey("readiness_checks")
