"""What /dashboard and /orders share: sign-in on connect, a per-connection event rate limit,
recovery of missed events on connect (`auth.since`) and on request (`replay`)."""

from __future__ import annotations

import logging
from typing import Any

import socketio
from aiohttp import web
from pydantic import ValidationError

from handlers.keys import accounts_key, realtime_key
from hub.errors import HubError, Unauthorized
from hub.realtime.engine import Realtime
from hub.realtime.history import Replay, as_message
from hub.realtime.streams import RESYNC
from hub.schemas.realtime import ConnectAuth, ReplayRequest
from store.client import UNAVAILABLE_ERRORS
from store.models import User

log = logging.getLogger(__name__)

# Errors that mean "cannot answer now" rather than "no": the database or a dependency is down.
SERVICE_ERRORS: tuple[type[Exception], ...] = (HubError, *UNAVAILABLE_ERRORS)

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
    read (`connect` → `accept`); rooms are the streams, chosen here, never by the client."""

    def __init__(self, namespace: str, app: web.Application) -> None:
        super().__init__(namespace)
        self.app = app
        self._accepted: set[str] = set()
        self._pending: dict[str, dict[str, tuple[int, Replay]]] = {}

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

    async def authenticate(self, auth: ConnectAuth) -> User:
        try:
            return await self.app[accounts_key].authenticate(auth.token)
        except Unauthorized:
            raise refuse(UNAUTHORIZED) from None
        except SERVICE_ERRORS:
            raise refuse(UNAVAILABLE) from None

    async def accept(self, sid: str, user: User, streams: list[str], auth: ConnectAuth, **session: Any) -> None:
        """Admit the connection to its streams' rooms, holding live deliveries until the events
        it missed (per `auth.since`) are sent right after the CONNECT (see `connected`)."""
        realtime = self.realtime
        await self.save_session(sid, {"user": user, "streams": streams, **session})
        realtime.server.hold(sid)
        try:
            for stream in streams:
                await self.enter_room(sid, stream)
            # Read after the hold started: an event is in this read, or held, or both (dropped then).
            pending = {}
            for stream, since in auth.since.items():
                if stream in streams:
                    pending[stream] = (since, await realtime.history.missed(stream, since))
        except UNAVAILABLE_ERRORS:
            realtime.server.release(sid)
            raise refuse(UNAVAILABLE) from None
        self._pending[sid] = pending
        self._accepted.add(sid)
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
        # Held events in seq order (concurrent publishes may have emitted them out of it); unsequenced
        # ones (stats) after them. Anything the replay already sent is dropped.
        for event_name, data in sorted(held, key=_seq_order):
            if isinstance(data, dict):
                held_stream, held_seq = data.get("stream"), data.get("seq")
                if isinstance(held_stream, str) and isinstance(held_seq, int) and held_seq <= last.get(held_stream, -1):
                    continue
            server.send_now(sid, self.namespace, event_name, data)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.realtime.server.release(sid)
        self._pending.pop(sid, None)
        if sid in self._accepted:
            self._accepted.discard(sid)
            self.realtime.metrics.socket_connections.labels(namespace=self.namespace).dec()

    # Events

    async def session_user(self, sid: str) -> tuple[User, dict[str, Any]]:
        session = await self.get_session(sid)
        user: User = session["user"]
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
            replay = await self.realtime.history.missed(body.stream, body.since)
        except UNAVAILABLE_ERRORS:
            return error_reply("UNAVAILABLE")
        if replay.resync_seq is not None:
            self.realtime.metrics.resyncs.labels(namespace=self.namespace).inc()
            resync = {"stream": body.stream, "seq": replay.resync_seq}
            self.realtime.server.send_now(sid, self.namespace, RESYNC, resync)
            return []
        self.realtime.metrics.replays.labels(namespace=self.namespace).inc()
        return [as_message(event) for event in replay.events]
