"""Socket.IO `/catalog`: a market's live stock and prices for storefronts; public.

`auth.market_id` (an active market) is required and `auth.token` optional (a bad one is refused).
Each connection counts against its client IP's rate limit, like a REST request. On connect the
client gets a `catalog` snapshot of every product of the market, then only the changed ones
(hub/realtime/catalog.py). Snapshots, not a stream: no `seq`, no replay.
"""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

from handlers.socket_namespace import FORBIDDEN, SERVICE_ERRORS, UNAUTHORIZED, UNAVAILABLE, LiveNamespace, refuse
from hub import ratelimit
from hub.client_ip import client_ip
from hub.database import database_errors
from hub.errors import NotFound, RateLimited, Unauthorized
from hub.keys import (
    accounts_key,
    catalog_feed_key,
    catalog_key,
    metrics_key,
    request_limiter_key,
    settings_key,
    socketio_key,
)
from hub.realtime.catalog import CATALOG_EVENT, CATALOG_NAMESPACE, catalog_room

RATE_LIMITED = "rate_limited"


class CatalogNamespace(socketio.AsyncNamespace):
    def __init__(self, app: web.Application) -> None:
        super().__init__(CATALOG_NAMESPACE)
        self.app = app
        # sid -> the snapshot read on connect, sent right after the CONNECT packet (see `connected`).
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._accepted: set[str] = set()

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        body = LiveNamespace.parse_auth(auth)
        await self._count_against_ip(environ)
        if body.token is not None:
            try:
                with database_errors():
                    await self.app[accounts_key].authenticate(body.token)
            except Unauthorized:
                raise refuse(UNAUTHORIZED) from None
            except SERVICE_ERRORS:
                raise refuse(UNAVAILABLE) from None
        if body.market_id is None:
            raise refuse(FORBIDDEN)
        server = self.app[socketio_key]
        try:
            with database_errors():
                # Active markets only; a malformed id is not found like an unknown one.
                market_id = (await self.app[catalog_key].market(body.market_id)).id
                # Deliveries are held from here until the snapshot is sent: a change pushed meanwhile
                # follows the snapshot instead of being overwritten by it.
                server.hold(sid)
                await self.enter_room(sid, catalog_room(market_id))
                self._snapshots[sid] = await self.app[catalog_feed_key].snapshot(market_id)
        except NotFound:
            raise refuse(FORBIDDEN) from None
        except SERVICE_ERRORS:
            server.release(sid)
            raise refuse(UNAVAILABLE) from None
        self._accepted.add(sid)
        self.app[metrics_key].socket_connections.labels(namespace=self.namespace).inc()
        return True

    async def connected(self, sid: str) -> None:
        """Called by HubServer once the CONNECT packet is queued: the snapshot, then what was held."""
        server = self.app[socketio_key]
        snapshot = self._snapshots.pop(sid, None)
        held = server.release(sid)
        if snapshot is not None:
            server.send_now(sid, self.namespace, CATALOG_EVENT, snapshot)
        for event, data in held:
            server.send_now(sid, self.namespace, event, data)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._snapshots.pop(sid, None)
        self.app[socketio_key].release(sid)
        if sid in self._accepted:
            self._accepted.discard(sid)
            self.app[metrics_key].socket_connections.labels(namespace=self.namespace).dec()

    async def _count_against_ip(self, environ: dict[str, Any]) -> None:
        limiter = self.app.get(request_limiter_key)
        request = environ.get("aiohttp.request")
        if limiter is None or not isinstance(request, web.Request):
            return
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        ip = client_ip(
            peer[0] if isinstance(peer, tuple) else None,
            request.headers.getall("X-Forwarded-For", []),
            self.app[settings_key].trusted_proxy_count,
        )
        try:
            await limiter.hit({ratelimit.IP: ip})
        except RateLimited:
            raise refuse(RATE_LIMITED) from None
