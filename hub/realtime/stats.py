"""Live market stats for dashboards: coalesced pushes, computed once per market per push.

Every instance sees the order events of every market it has dashboards of (its own, and the
others' through the market's Redis room channel) on their way to the local clients: the composition
root has the Socket.IO server's delivery call `market_changed(market_id)` for each, which marks
that market changed if it has dashboards of it connected here. Pushes are coalesced per market
(hub/realtime/coalescing.py; with the 0.25 s interval at most 4 a second, well within 1 s of a
change). Each instance pushes to its own clients only (no Redis round trip, no duplicates).

The figures last computed for a market are kept while it has dashboards here, and a connecting
dashboard's first `stats` is taken from them (no aggregation per connection) unless an order
event of the market has been seen since they were computed, they are older than
FIGURES_MAX_AGE_SECONDS (the day's figures roll over at midnight), or the market's last local
dashboard has left meanwhile (this instance then no longer hears its events: `unwatched`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from hub.realtime.coalescing import CoalescedPushes
from hub.realtime.server import HubServer
from hub.realtime.streams import DASHBOARD, STATS, market_stream

log = logging.getLogger(__name__)

StatsSource = Callable[[str], Awaitable[BaseModel]]

FIGURES_MAX_AGE_SECONDS = 5.0


class StatsPusher:
    def __init__(self, server: HubServer, source: StatsSource, *, interval: float) -> None:
        self.server = server
        self.source = source
        self._pushes: CoalescedPushes[None] = CoalescedPushes(self._push, interval=interval)
        self._computing: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # market -> how many of its order events this instance has seen; figures computed at
        # another count are stale. (generation when computed, monotonic time, figures)
        self._changes: dict[str, int] = {}
        self._figures: dict[str, tuple[int, float, dict[str, Any]]] = {}

    async def current(self, market_id: str) -> dict[str, Any]:
        """The market's stats now. Callers that ask while a computation for the market is running
        share it (a thousand dashboards connecting at once cost one query, not a thousand); a
        change it may have missed is pushed right after it anyway. The kept figures when they are
        still the market's (see the module docstring)."""
        kept = self._figures.get(market_id)
        if kept is not None:
            changes, at, figures = kept
            fresh = time.monotonic() - at < FIGURES_MAX_AGE_SECONDS
            if fresh and changes == self._changes.get(market_id, 0):
                return dict(figures)
            del self._figures[market_id]
        running = self._computing.get(market_id)
        if running is None:
            running = asyncio.ensure_future(self._compute(market_id))
            self._computing[market_id] = running
            running.add_done_callback(lambda done: self._computed(market_id, done))
        return dict(await asyncio.shield(running))

    def _computed(self, market_id: str, done: asyncio.Future[dict[str, Any]]) -> None:
        self._computing.pop(market_id, None)
        if not done.cancelled():
            done.exception()  # retrieved here: every caller may have gone (their own error paths log it)

    async def _compute(self, market_id: str) -> dict[str, Any]:
        changes, at = self._changes.get(market_id, 0), time.monotonic()
        figures = (await self.source(market_id)).model_dump(mode="json")
        if self.server.has_local_room(DASHBOARD, market_stream(market_id)):
            self._figures[market_id] = (changes, at, figures)
        return figures

    def unwatched(self, market_id: str, leaving_sid: str) -> None:
        """A dashboard of the market is leaving here: without any, its events no longer reach this
        instance, so its kept figures could go stale unseen."""
        room = market_stream(market_id)
        if not self.server.has_local_room(DASHBOARD, room):
            self._figures.pop(market_id, None)
            return
        if all(sid == leaving_sid for sid, _ in self.server.manager.get_participants(DASHBOARD, room)):
            self._figures.pop(market_id, None)

    def market_changed(self, market_id: str) -> None:
        """An order event of the market reached this instance."""
        self._changes[market_id] = self._changes.get(market_id, 0) + 1
        if not self.server.has_local_room(DASHBOARD, market_stream(market_id)):
            return
        self._pushes.mark(market_id)

    async def close(self) -> None:
        await self._pushes.close()

    async def _push(self, market_id: str, _: set[None]) -> None:
        room = market_stream(market_id)
        if not self.server.has_local_room(DASHBOARD, room):
            return
        try:
            stats = await self.current(market_id)
        except Exception:  # the next change tries again; the dashboard keeps the last figures
            log.exception("market stats failed", extra={"market_id": market_id})
            return
        await self.server.emit(STATS, stats, room=room, namespace=DASHBOARD, ignore_queue=True)
