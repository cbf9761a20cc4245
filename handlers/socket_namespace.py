"""What /dashboard and /orders share: sign-in on connect, a per-connection event rate limit,
recovery of missed events on connect (`auth.since`) and on request (`replay`)."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from typing import Any

import socketio
from aiohttp import web
from pydantic import ValidationError

from hub.accounts import ConnectedUser, SignedIn
from hub.database import database_errors
from hub.errors import DatabaseUnavailable, HubError, Unauthorized
from hub.keys import accounts_key, realtime_key
from hub.realtime.engine import Realtime
from hub.realtime.history import Replay, as_message
from hub.realtime.revocation import AUTH_EXPIRED
from hub.realtime.streams import RESYNC, account_room
from hub.realtime.timer_wheel import TimerWheel
from hub.schemas.realtime import ConnectAuth, RefreshRequest, ReplayRequest

log = logging.getLogger(__name__)

# Errors that mean "cannot answer now" rather than "no": the database or a dependency is down.
SERVICE_ERRORS: tuple[type[Exception], ...] = (HubError,)

UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
UNAVAILABLE = "unavailable"


def refuse(message: str) -> socketio.exceptions.ConnectionRefusedError:
    """The client's connect_error carries {"message": message}."""
    return socketio.exceptions.ConnectionRefusedError(message)


def error_reply(code: str) -> dict[str, Any]:
    return {"error": {"code": code}}


def _seq_order(item: tuple[str, Any]) -> float:
    seq = item[1].get("seq") if isinstance(item[1], dict) else None
    return seq if isinstance(seq, int) else float("inf")


class LiveNamespace(socketio.AsyncNamespace):
    """Base of the hub's namespaces. Subclasses decide who may connect and which streams they
    read (`connect` → `accept`); rooms are the streams, chosen here, never by the client.

    A connection lives no longer than its token: at `exp` it gets `auth:expired` and is
    disconnected, unless `auth:refresh` brought a fresh token of the same user first. Every
    connection is also in its user's account room, where a revocation (hub/realtime/revocation.py)
    finds it on whichever instance it is."""

    def __init__(self, namespace: str, app: web.Application) -> None:
        super().__init__(namespace)
        self.app = app
        self._accepted: set[str] = set()
        self._pending: dict[str, dict[str, tuple[int, Replay]]] = {}
        # Token expiry: the second each connection's is due in, in timers shared per second (a timer of
        # its own per connection is ~0.6 KB of an idle connection's memory).
        self._expiry: dict[str, int] = {}
        self._expiry_timers = TimerWheel()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def realtime(self) -> Realtime:
        return self.app[realtime_key]

    async def trigger_event(self, event: str, *args: Any) -> Any:
        # `stats:get` is handled by on_stats_get: a method name cannot hold a colon.
        return await super().trigger_event(event.replace(":", "_"), *args)

    # Connect

    @staticmethod
    def parse_auth(auth: Any) -> ConnectAuth:
        try:
            return ConnectAuth.model_validate(auth if isinstance(auth, dict) else {})
        except ValidationError:
            token = auth.get("token") if isinstance(auth, dict) else None
            # A malformed `since` or market id is ignored, not a reason to refuse a valid token.
            return ConnectAuth(token=token if isinstance(token, str) and len(token) <= 4096 else None)

    async def authenticate(self, auth: ConnectAuth) -> SignedIn:
        """The token's user; the token's expiry is kept for `accept` (the connection ends then)."""
        try:
            with database_errors():
                user, expires_at = await self.app[accounts_key].authenticate_until(auth.token)
        except Unauthorized:
            raise refuse(UNAUTHORIZED) from None
        except SERVICE_ERRORS:
            raise refuse(UNAVAILABLE) from None
        auth.expires_at = expires_at
        return user

    async def accept(self, sid: str, user: SignedIn, streams: list[str], auth: ConnectAuth, **session: Any) -> None:
        """Admit the connection to its streams' rooms, holding live deliveries until the events
        it missed (per `auth.since`) are sent right after the CONNECT (see `connected`)."""
        realtime = self.realtime
        await self.save_session(sid, {"user": ConnectedUser.of(user), "streams": streams, **session})
        realtime.server.hold(sid)
        try:
            with database_errors():
                await self.enter_room(sid, account_room(user.id))
                for stream in streams:
                    await self.enter_room(sid, stream)
                # Read after the hold started: an event is in this read, or held, or both (dropped then).
                pending = {}
                for stream, since in auth.since.items():
                    if stream in streams:
                        pending[stream] = (since, await realtime.history.missed(stream, since))
        except DatabaseUnavailable:
            realtime.server.release(sid)
            raise refuse(UNAVAILABLE) from None
        self._pending[sid] = pending
        self._accepted.add(sid)
        if auth.expires_at is not None:
            self._expire_at(sid, auth.expires_at)
        realtime.metrics.socket_connections.labels(namespace=self.namespace).inc()

    async def connected(self, sid: str) -> None:
        """Called by HubServer once the CONNECT packet is queued: replay, then what was held, then live."""
        self._flush(sid, self._pending.pop(sid, {}))
        await self.after_connect(sid)

    async def after_connect(self, sid: str) -> None:
        """What a namespace sends a new connection after its replay."""

    def _flush(self, sid: str, pending: dict[str, tuple[int, Replay]]) -> None:
        # Synchronous from release() to the last send: no live delivery can slip in between.
        server = self.realtime.server
        metrics = self.realtime.metrics
        held = server.release(sid)
        last: dict[str, int] = {}
        for stream, (since, replay) in pending.items():
            if replay.resync_seq is not None:
                server.send_now(sid, self.namespace, RESYNC, {"stream": stream, "seq": replay.resync_seq})
                last[stream] = replay.resync_seq
                metrics.resyncs.labels(namespace=self.namespace).inc()
                continue
            last[stream] = since
            for event in replay.events:
                server.send_now(sid, self.namespace, event.event, event.payload)
                last[stream] = event.seq
            if replay.events:
                metrics.replays.labels(namespace=self.namespace).inc()
        # A replayed event whose live emit is still on its way is not delivered twice.
        server.delivery.floor(sid, last)
        # Held events in seq order (concurrent publishes may have emitted them out of it); unsequenced
        # ones (stats) after them. Anything the replay already sent is dropped.
        for event_name, data in sorted(held, key=_seq_order):
            if isinstance(data, dict):
                held_stream, held_seq = data.get("stream"), data.get("seq")
                if isinstance(held_stream, str) and isinstance(held_seq, int) and held_seq <= last.get(held_stream, -1):
                    continue
            server.send_now(sid, self.namespace, event_name, data)

    # Token lifetime

    def _expire_at(self, sid: str, expires_at: datetime) -> None:
        self._cancel_expiry(sid)
        delay = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
        expired = functools.partial(self._expired, sid, expires_at)
        self._expiry[sid] = self._expiry_timers.call_later(delay, sid, expired)

    def _cancel_expiry(self, sid: str) -> None:
        second = self._expiry.pop(sid, None)
        if second is not None:
            self._expiry_timers.cancel(second, sid)

    def _expired(self, sid: str, expires_at: datetime) -> None:
        self._expiry.pop(sid, None)
        task = asyncio.ensure_future(self._end_expired(sid, expires_at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_expired(self, sid: str, expires_at: datetime) -> None:
        self.realtime.server.send_now(sid, self.namespace, AUTH_EXPIRED, {"expired_at": expires_at.isoformat()})
        await self.disconnect(sid)

    async def on_auth_refresh(self, sid: str, data: Any = None) -> dict[str, Any]:
        """`auth:refresh` {token}: the connection now lives until the fresh token's `exp`. Ack
        {"ok": true, "expires_at"}, or an error: UNAUTHORIZED (bad, expired, or the user is no
        longer active), FORBIDDEN (a token of another user, or the user's role changed)."""
        try:
            body = RefreshRequest.model_validate(data)
        except ValidationError:
            return error_reply("VALIDATION_ERROR")
        connected_as, _ = await self.session_user(sid)
        try:
            with database_errors():
                user, expires_at = await self.app[accounts_key].authenticate_until(body.token)
        except Unauthorized:
            return error_reply("UNAUTHORIZED")
        except SERVICE_ERRORS:
            return error_reply("UNAVAILABLE")
        if user.id != connected_as.id or user.role != connected_as.role:
            return error_reply("FORBIDDEN")
        if sid not in self._accepted:  # disconnected while the user was read
            return error_reply("UNAUTHORIZED")
        self._expire_at(sid, expires_at)
        return {"ok": True, "expires_at": expires_at.isoformat()}

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._cancel_expiry(sid)
        self.realtime.server.release(sid)
        self._pending.pop(sid, None)
        if sid in self._accepted:
            self._accepted.discard(sid)
            self.realtime.metrics.socket_connections.labels(namespace=self.namespace).dec()

    # Events

    async def session_user(self, sid: str) -> tuple[ConnectedUser, dict[str, Any]]:
        session = await self.get_session(sid)
        user: ConnectedUser = session["user"]
        return user, session

    async def on_replay(self, sid: str, data: Any = None) -> Any:
        """Ack: the events of `stream` after `since`, oldest first; or `resync` and an empty list."""
        try:
            body = ReplayRequest.model_validate(data)
        except ValidationError:
            return error_reply("VALIDATION_ERROR")
        _, session = await self.session_user(sid)
        if body.stream not in session["streams"]:
            return error_reply("FORBIDDEN")
        try:
            with database_errors():
                replay = await self.realtime.history.missed(body.stream, body.since)
        except DatabaseUnavailable:
            return error_reply("UNAVAILABLE")
        if replay.resync_seq is not None:
            self.realtime.metrics.resyncs.labels(namespace=self.namespace).inc()
            resync = {"stream": body.stream, "seq": replay.resync_seq}
            self.realtime.server.send_now(sid, self.namespace, RESYNC, resync)
            return []
        self.realtime.metrics.replays.labels(namespace=self.namespace).inc()
        return [as_message(event) for event in replay.events]
