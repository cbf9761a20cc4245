"""The Socket.IO server: python-socketio's AsyncServer with the hub's delivery path and a stricter
reading of what clients send (the wire protocol does not change).

- Delivery (hub/realtime/delivery.py) encodes a broadcast once and bounds each connection's queue;
  the Engine.IO layer under it is hub/realtime/engineio_server.py.
- A hook after a namespace connection is accepted (the CONNECT packet is queued), where the replay
  and the first `stats` are sent.
- Only text packets, within a per-connection rate; a malformed one ends the connection.
Every python-socketio private name used here is listed in hub/realtime/internals.py.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import engineio
import socketio
from socketio import packet as sio_packet

from hub.metrics import HubMetrics
from hub.realtime import internals
from hub.realtime.admission import BUSY, HandshakeGate
from hub.realtime.codec import orjson_json
from hub.realtime.delivery import Delivery, MarketChanged
from hub.realtime.engineio_server import HubEngineServer
from hub.realtime.origins import OriginPolicy
from hub.realtime.redis_manager import HubManager, redis_manager
from hub.realtime.revocation import AUTH_REVOKED
from hub.settings import Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024

# Event names the server itself raises; a client sending them is ignored.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})
# Socket.IO packet types BINARY_EVENT and BINARY_ACK, as the first character of a text packet.
BINARY_PACKET_TYPES = frozenset({str(sio_packet.BINARY_EVENT), str(sio_packet.BINARY_ACK)})


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ConnectedHook(Protocol):
    async def connected(self, sid: str) -> None: ...


class HubServer(socketio.AsyncServer):
    def __init__(
        self, *, max_queue_bytes: int, events_per_second: float, events_burst: int, handshakes: HandshakeGate,
        metrics: HubMetrics, market_changed: MarketChanged, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.handshakes = handshakes
        self.events_per_second = events_per_second
        self.events_burst = events_burst
        self._buckets: dict[str, TokenBucket] = {}
        self.delivery = Delivery(
            manager=self.manager,
            engine=self.eio,
            packet_class=self.packet_class,
            max_queue_bytes=max_queue_bytes,
            metrics=metrics,
            market_changed=market_changed,
        )
        # Only the namespaces with a handler accept connections: not even the default `/` (the
        # constructor turns an empty list into ["/"], hence after it).
        self.namespaces: list[str] = []

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return HubEngineServer

    # Delivery (hub/realtime/delivery.py)

    def send_now(self, sid: str, namespace: str, event: str, data: Any) -> None:
        self.delivery.send_now(sid, namespace, event, data)

    def hold(self, sid: str) -> None:
        self.delivery.hold(sid)

    def release(self, sid: str) -> list[tuple[str, Any]]:
        return self.delivery.release(sid)

    def has_local_room(self, namespace: str, room: str) -> bool:
        return self.delivery.has_local_room(namespace, room)

    async def end_room(self, namespace: str, room: str, data: Any) -> None:
        """Disconnect this instance's participants of a room (a REVOKE reached it), telling each why.
        Called by LocalFanout (hub/realtime/redis_manager.py) for REVOKE, from here or another instance."""
        for sid, _ in list(self.manager.get_participants(namespace, room)):
            self.send_now(sid, namespace, AUTH_REVOKED, data)
            await self.disconnect(sid, namespace)

    # Connection

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        """A namespace handshake, admitted by the gate (hub/realtime/admission.py); then the
        namespace's `connected` hook (replay, first stats), still within the admission."""
        async with self.handshakes.admit() as admitted:
            if not admitted:
                refusal = self.packet_class(sio_packet.CONNECT_ERROR, data={"message": BUSY}, namespace=namespace)
                await self._send_packet(eio_sid, refusal)
                return
            if self._gone(eio_sid):
                return  # its session ended while it waited (the client left, or missed a pong: its reader is here)
            namespace = namespace or "/"
            try:
                await super()._handle_connect(eio_sid, namespace, data)
            finally:
                if self._gone(eio_sid):
                    await self._abandon(eio_sid, namespace)
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            handler = self.namespace_handlers.get(namespace)
            if sid is None or handler is None or not hasattr(handler, "connected"):
                return
            if self.manager.is_connected(sid, namespace):
                hook: ConnectedHook = handler
                await hook.connected(sid)

    def _gone(self, eio_sid: str) -> bool:
        """The Engine.IO session has ended, or its disconnect is running."""
        socket = self.eio.sockets.get(eio_sid)
        return socket is None or socket.closing or socket.closed

    async def _abandon(self, eio_sid: str, namespace: str) -> None:
        """The session ended during the handshake. python-socketio's disconnect skipped the connection
        then (still pending), so it would stay in its rooms (and their Redis channels, and the hold of
        its live events) for good: end it here, as that disconnect would have."""
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None:
            return
        self.manager.pre_disconnect(sid, namespace)
        await self._trigger_event("disconnect", namespace, sid, self.reason.TRANSPORT_CLOSE)
        await self.manager.disconnect(sid, namespace, ignore_queue=True)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Every Socket.IO packet a client sends passes here. The hub's clients send text only:
        a binary event (or attachment) would be buffered for as many attachments as it claims
        before any limit applies, so it ends the connection, like a packet that does not decode
        (python-socketio would log a traceback for each and keep the connection). Every packet,
        CONNECT included, counts against the connection's rate limit: past it, disconnected."""
        if eio_sid in self.delivery.cutting:
            return
        socket = self.eio.sockets.get(eio_sid)
        if not isinstance(data, str) or data[:1] in BINARY_PACKET_TYPES:
            self._drop(eio_sid, socket, "binary Socket.IO packet refused")
            return
        bucket = self._buckets.get(eio_sid)
        if bucket is None:
            bucket = self._buckets[eio_sid] = TokenBucket(self.events_per_second, self.events_burst)
        if not bucket.take():
            self._drop(eio_sid, socket, "socket event rate exceeded")
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except ValueError:  # orjson.JSONDecodeError included: a packet that does not decode
            self._drop(eio_sid, socket, "malformed Socket.IO packet")

    def _drop(self, eio_sid: str, socket: Any, why: str) -> None:
        if socket is not None and eio_sid not in self.delivery.cutting:
            log.warning("socket packet refused; disconnecting", extra={"why": why})
            self.delivery.cut(eio_sid, socket)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if not data or not isinstance(data[0], str) or data[0] in RESERVED_EVENTS:
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._buckets.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)


def build_server(settings: Settings, metrics: HubMetrics, *, market_changed: MarketChanged) -> HubServer:
    """`market_changed(market_id)`: an order event of that market reached this instance (for live stats)."""
    internals.verify()  # an upgrade that moved one of them fails here, at start, not quietly later
    manager: socketio.AsyncManager = redis_manager(settings, metrics) if settings.redis_url else HubManager()
    return HubServer(
        metrics=metrics,
        market_changed=market_changed,
        max_queue_bytes=settings.socket_max_queue_bytes,
        events_per_second=settings.socket_events_per_second,
        events_burst=settings.socket_events_burst,
        handshakes=HandshakeGate(
            limit=settings.socket_handshake_concurrency,
            queue=settings.socket_handshake_queue,
            max_wait=settings.socket_handshake_max_wait_seconds,
            metrics=metrics,
        ),
        async_mode="aiohttp",
        client_manager=manager,
        json=orjson_json,
        cors_allowed_origins=OriginPolicy(settings.cors_origins, trust_forwarded=settings.trusted_proxy_count > 0),
        max_http_buffer_size=MAX_MESSAGE_BYTES,
        transports=["polling", "websocket"],
        # Handlers run as tasks, so a slow `replay` does not hold up the connection's other events.
        async_handlers=True,
        logger=False,
        engineio_logger=False,
    )
