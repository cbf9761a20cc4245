"""Socket.IO `/dashboard`: a market's live order feed and stats, for its admin or a super_admin."""

from __future__ import annotations

import logging
from typing import Any

from auth.policy import dashboard_defaults_to_own_market, may_watch_dashboard
from handlers.socket_namespace import FORBIDDEN, SERVICE_ERRORS, UNAVAILABLE, LiveNamespace, error_reply, refuse
from hub.database import database_errors
from hub.errors import Forbidden, NotFound
from hub.keys import catalog_key
from hub.realtime.streams import DASHBOARD, STATS, market_stream

log = logging.getLogger(__name__)


class DashboardNamespace(LiveNamespace):
    def __init__(self, app: Any) -> None:
        super().__init__(DASHBOARD, app)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        body = self.parse_auth(auth)
        user = await self.authenticate(body)
        catalog = self.app[catalog_key]
        try:
            with database_errors():
                if body.market_id is None and dashboard_defaults_to_own_market(user):
                    market = await catalog.own_market(user)  # DESIGN.md: optional for their own market
                else:
                    if body.market_id is None:
                        raise refuse(FORBIDDEN)
                    # Only a market the user manages; an unknown or malformed one is refused the same way.
                    market = await catalog.managed_market(user, body.market_id)
        except (Forbidden, NotFound):
            raise refuse(FORBIDDEN) from None
        except SERVICE_ERRORS:
            raise refuse(UNAVAILABLE) from None
        if not may_watch_dashboard(user, market):
            raise refuse(FORBIDDEN)
        await self.accept(sid, user, [market_stream(market.id)], body, market_id=market.id)
        return True

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        try:
            market_id = (await self.get_session(sid)).get("market_id")
        except KeyError:  # no session: it was never admitted
            market_id = None
        await super().on_disconnect(sid, reason)
        if market_id is not None:
            self.realtime.stats.unwatched(market_id, sid)

    async def after_connect(self, sid: str) -> None:
        _, session = await self.session_user(sid)
        try:
            stats = await self.realtime.stats.current(session["market_id"])
        except Exception:  # the next change pushes stats anyway
            log.exception("stats on connect failed", extra={"market_id": session["market_id"]})
            return
        self.realtime.server.send_now(sid, self.namespace, STATS, stats)

    async def on_stats_get(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Ack: the market's stats now."""
        _, session = await self.session_user(sid)
        try:
            with database_errors():
                return await self.realtime.stats.current(session["market_id"])
        except SERVICE_ERRORS:
            return error_reply("UNAVAILABLE")
