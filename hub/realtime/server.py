"""The Socket.IO server: python-socketio with a faster, bounded delivery path.

What changes against a stock `socketio.AsyncServer` (the wire protocol does not):
- a broadcast is encoded once (Socket.IO packet, then the Engine.IO frame text, cached in the
  one Packet object every recipient shares) and put straight into each recipient's outgoing
  queue, without a task per recipient;
- each connection's outgoing queue counts its bytes; past `max_queue_bytes` the connection is
  cut (it reconnects and recovers from the event history) instead of growing the server's memory;
- deliveries to a connection can be held while its missed events are replayed, so a reconnecting
  client sees the replay first and no event twice;
- a hook after a namespace connection is accepted (the CONNECT packet is queued), where the
  replay and the first `stats` are sent;
- with Redis, a publish that python-socketio gives up on (it logs and returns) is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import engineio
import socketio
from aiohttp import web
from engineio import async_socket as eio_async_socket
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as sio_packet

from hub.realtime.codec import orjson_json
from hub.settings import Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
# A broadcast is written straight to a WebSocket's transport while less than this waits in it.
DIRECT_WRITE_LIMIT = 64 * 1024
REDIS_CONNECT_TIMEOUT_SECONDS = 2

EmitObserver = Callable[[str, Any, str, Any], None]
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


class PacketQueue(asyncio.Queue[Any]):
    """An Engine.IO socket's outgoing queue that knows roughly how many bytes it holds, and, once
    the socket is on WebSocket, how many packets its writer has taken but not yet written."""

    def __init__(self) -> None:
        super().__init__()
        self.nbytes = 0
        self.in_flight = 0
        self.socket: Any = None  # set when the socket opens its WebSocket

    def _put(self, item: Any) -> None:
        self.nbytes += _size(item)
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        self.nbytes -= _size(item)
        if self.socket is not None and self.socket.upgraded:
            self.in_flight += 1
        return item

    def discard_all(self) -> None:
        while True:
            try:
                self.get_nowait()
            except asyncio.QueueEmpty:
                return
            self.task_done()


def _size(item: Any) -> int:
    if not isinstance(item, eio_packet.Packet):
        return 0
    if item.binary:
        return len(item.data)
    # encode() caches its text on the packet: the writer reuses it, so this costs nothing extra.
    return len(item.encode())


class TrackedWebSocket(eio_aiohttp.WebSocket):
    """engineio's aiohttp WebSocket, with three changes:
    - it remembers the socket's TCP transport: broadcasts can be written to it directly (see
      HubServer._write_direct), and a stalled client can be cut off (its writer is stuck in a
      drain that only a closed transport releases);
    - it tells the socket's PacketQueue when the writer has written what it took;
    - no per-message deflate: compression state is per connection, so a compressed frame could
      not be shared by the recipients of a broadcast, and our frames are small JSON."""

    async def __call__(self, environ: dict[str, Any]) -> Any:
        request = environ["aiohttp.request"]
        self.owner = getattr(self.handler, "__self__", None)
        self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self._sock.prepare(request)
        if self.owner is not None:
            self.owner.hub_transport = request.transport
            self.owner.hub_websocket = self._sock
            if isinstance(self.owner.queue, PacketQueue):
                self.owner.queue.socket = self.owner
        self.environ = environ
        await self.handler(self)
        return self._sock

    async def send(self, message: Any) -> None:
        # Once upgraded, every send comes from the writer, for a packet it took from the queue.
        owner = self.owner
        queue = owner.queue if owner is not None and owner.upgraded else None
        try:
            await super().send(message)
        finally:
            if isinstance(queue, PacketQueue):
                queue.in_flight -= 1


def websocket_text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class LeanSocket(eio_async_socket.AsyncSocket):
    """engineio's socket with fewer tasks per connection (memory per idle dashboard): the next
    ping waits on a timer, not in a sleeping task, and a WebSocket's reader waits for its next
    message under a timeout instead of in a new task per message. Same packets on the wire."""

    def schedule_ping(self) -> None:
        if self.last_ping:  # type: ignore[has-type]  # engineio's untyped attribute
            self.last_ping = None
            asyncio.get_running_loop().call_later(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        if not self.closing and not self.closed:
            self.server.start_background_task(self._send_ping_now)

    async def _send_ping_now(self) -> None:
        self.last_ping = time.time()  # type: ignore[assignment]  # engineio's untyped attribute
        with contextlib.suppress(engineio.exceptions.SocketIsClosedError):  # closed since the timer fired
            await self.send(eio_packet.Packet(eio_packet.PING))

    async def _websocket_handler(self, ws: Any) -> Any:
        if self.connected:  # type: ignore[has-type]  # engineio's untyped attribute
            # An upgrade from long-polling: engineio's own path (rare; the dashboards use WebSocket).
            return await super()._websocket_handler(ws)
        self.connected = True
        self.upgraded = True
        server = self.server
        max_size = server.max_http_buffer_size
        idle = server.ping_interval + server.ping_timeout
        writer = asyncio.ensure_future(self._write_loop(ws))
        try:
            while True:
                try:
                    async with asyncio.timeout(idle):
                        data = await ws.wait()
                except (Exception, asyncio.CancelledError):  # noqa: BLE001
                    # Closed, timed out, broken, or cancelled by aiohttp when the peer went away (a
                    # cut slow client): the connection ends and is closed below, as engineio does.
                    break
                if data is None:
                    break
                if len(data) > max_size:
                    break
                try:
                    packet = eio_packet.Packet(encoded_packet=data)
                except (ValueError, IndexError):  # not an Engine.IO packet: the connection ends
                    log.warning("socket packet refused; disconnecting", extra={"why": "not an Engine.IO packet"})
                    break
                try:
                    await self.receive(packet)
                except engineio.exceptions.SocketIsClosedError:
                    break
                except engineio.exceptions.UnknownPacketError:
                    pass
                except Exception:
                    log.exception("engine.io receive error")
        finally:
            await self.queue.put(None)  # lets the writer end
            await writer
        await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)

    async def _write_loop(self, ws: Any) -> None:
        while True:
            try:
                packets = await self.poll()
            except engineio.exceptions.QueueEmpty:
                break
            if not packets:
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except Exception:  # noqa: BLE001 - the peer is gone: stop writing
                break
        await ws.close()


class HubEngineServer(engineio.AsyncServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        drivers: dict[str, Any] = getattr(self, "_async")  # noqa: B009 - untyped attribute of engineio
        self._async = {**drivers, "websocket": TrackedWebSocket}

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect" and args:
            # engineio makes its AsyncSocket itself, just before this event: make it a LeanSocket.
            socket = self.sockets.get(args[0])
            if type(socket) is eio_async_socket.AsyncSocket:
                socket.__class__ = LeanSocket
        return await super()._trigger_event(event, *args, **kwargs)

    def create_queue(self, *args: Any, **kwargs: Any) -> PacketQueue:
        return PacketQueue()

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        # engineio's long-polling POST looks a session up after checking that it exists: one
        # closed in between (e.g. cut for a malformed packet) raises KeyError, which would answer 500.
        try:
            return await super().handle_request(*args, **kwargs)
        except KeyError:
            return web.json_response("Session is disconnected", status=400)


class ConnectedHook(Protocol):
    async def connected(self, sid: str) -> None: ...


class HubServer(socketio.AsyncServer):
    def __init__(self, *, max_queue_bytes: int, events_per_second: float, events_burst: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_queue_bytes = max_queue_bytes
        self.events_per_second = events_per_second
        self.events_burst = events_burst
        self._buckets: dict[str, TokenBucket] = {}
        # sid -> deliveries held back while that client's missed events are replayed
        self.holds: dict[str, list[tuple[str, Any]]] = {}
        self.emit_observers: list[EmitObserver] = []
        self.slow_client_observers: list[Callable[[str], None]] = []
        self._cutting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return HubEngineServer

    # Delivery

    def broadcast(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> bool:
        """Deliver to this instance's participants of a room, encoding once. False when the
        packet needs the stock path (binary attachments)."""
        for observer in self.emit_observers:
            observer(event, data, namespace, room)
        rooms = self.manager.rooms.get(namespace)
        if not rooms or (isinstance(room, str) and room not in rooms):
            return True  # nobody here: not even an encode (Redis brings every market's events to every instance)
        frame = self._frame(namespace, event, data)
        if frame is None:
            return False
        skip = _as_set(skip_sid)
        holds = self.holds
        for sid, eio_sid in self.manager.get_participants(namespace, room):
            if sid in skip:
                continue
            if holds:
                held = holds.get(sid)
                if held is not None:
                    held.append((event, data))
                    continue
            self._enqueue(eio_sid, frame, namespace, bounded=True)
        return True

    def send_now(self, sid: str, namespace: str, event: str, data: Any) -> None:
        """Queue one event for one client, synchronously (no other delivery can slip in between
        two calls). Not bounded: used for replays, which the history already bounds."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        frame = self._frame(namespace, event, data)
        if eio_sid is not None and frame is not None:
            self._enqueue(eio_sid, frame, namespace, bounded=False)

    def hold(self, sid: str) -> None:
        self.holds[sid] = []

    def release(self, sid: str) -> list[tuple[str, Any]]:
        return self.holds.pop(sid, [])

    def has_local_room(self, namespace: str, room: str) -> bool:
        return bool(self.manager.rooms.get(namespace, {}).get(room))

    def _frame(self, namespace: str, event: str, data: Any) -> eio_packet.Packet | None:
        if isinstance(data, tuple):
            args = [event, *data]
        elif data is None:
            args = [event]
        else:
            args = [event, data]
        encoded = self.packet_class(sio_packet.EVENT, namespace=namespace, data=args).encode()
        if isinstance(encoded, list):
            return None
        frame = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame.encode()
        return frame

    def _enqueue(self, eio_sid: str, frame: eio_packet.Packet, namespace: str, *, bounded: bool) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            return
        if self._write_direct(socket, frame):
            return
        queue = socket.queue
        queue.put_nowait(frame)
        if bounded and isinstance(queue, PacketQueue) and queue.nbytes > self.max_queue_bytes:
            self._cut_slow_client(eio_sid, socket, namespace)

    @staticmethod
    def _write_direct(socket: Any, frame: eio_packet.Packet) -> bool:
        """Write the broadcast's ready-made WebSocket frame to the socket's transport, skipping
        its writer task, when nothing is ahead of it (queue empty, nothing taken but unwritten)
        and the transport is not backed up. Order is kept: whatever was queued before is
        already in the transport. Otherwise the frame takes the queue."""
        queue = socket.queue
        if not isinstance(queue, PacketQueue) or queue.socket is None or queue.in_flight or not queue.empty():
            return False
        if not socket.upgraded or socket.upgrading:
            return False
        transport = getattr(socket, "hub_transport", None)
        websocket = getattr(socket, "hub_websocket", None)
        if transport is None or transport.is_closing() or websocket is None or websocket.closed:
            return False
        if transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
            return False
        data = getattr(frame, "hub_websocket_frame", None)
        if data is None:
            text = frame.encode()
            if not isinstance(text, str):
                return False
            data = frame.hub_websocket_frame = websocket_text_frame(text.encode())
        transport.write(data)
        return True

    def _cut_slow_client(self, eio_sid: str, socket: Any, namespace: str) -> None:
        if eio_sid in self._cutting:
            return
        log.warning("slow client disconnected", extra={"namespace": namespace, "queued_bytes": socket.queue.nbytes})
        for observer in self.slow_client_observers:
            observer(namespace)
        self._cut(eio_sid, socket)

    def _cut(self, eio_sid: str, socket: Any) -> None:
        """Drop a connection now, whatever state its writer is in; the client reconnects."""
        if eio_sid in self._cutting:
            return
        self._cutting.add(eio_sid)
        if isinstance(socket.queue, PacketQueue):
            socket.queue.discard_all()
        transport = getattr(socket, "hub_transport", None)
        if socket.upgraded and transport is not None:
            # The normal close path runs from here: the reader sees the connection end.
            transport.abort()
        else:
            self._spawn(socket.close(wait=False, abort=True))
        self._spawn(self._forget_cut(eio_sid))

    async def _forget_cut(self, eio_sid: str) -> None:
        await asyncio.sleep(5)
        self._cutting.discard(eio_sid)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Connection

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        handler = self.namespace_handlers.get(namespace)
        if sid is None or handler is None or not hasattr(handler, "connected"):
            return
        if self.manager.is_connected(sid, namespace):
            hook: ConnectedHook = handler
            await hook.connected(sid)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Every Socket.IO packet a client sends passes here. The hub's clients send text only:
        a binary event (or attachment) would be buffered for as many attachments as it claims
        before any limit applies, so it ends the connection, like a packet that does not decode
        (python-socketio would log a traceback for each and keep the connection). Every packet,
        CONNECT included, counts against the connection's rate limit: past it, disconnected."""
        if eio_sid in self._cutting:
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
        if socket is not None and eio_sid not in self._cutting:
            log.warning("socket packet refused; disconnecting", extra={"why": why})
            self._cut(eio_sid, socket)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if not data or not isinstance(data[0], str) or data[0] in RESERVED_EVENTS:
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._buckets.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)


def _as_set(skip_sid: Any) -> set[Any]:
    if skip_sid is None:
        return set()
    if isinstance(skip_sid, str):
        return {skip_sid}
    if isinstance(skip_sid, Iterable):
        return set(skip_sid)
    return {skip_sid}


class LocalFanout(socketio.AsyncManager):
    """Local delivery through HubServer.broadcast. In the Redis manager's class order this sits
    below the pub/sub layer, so events from other instances take the same path."""

    async def emit(  # noqa: PLR0917 - python-socketio's signature
        self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
        callback: Any = None, to: Any = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        room = to or room
        server = self.server
        fast = callback is None and isinstance(server, HubServer)
        if fast and server.broadcast(event, data, namespace, room, skip_sid):
            return
        await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)


class HubManager(LocalFanout):
    """In-process fan-out (no Redis): one instance."""


def _string_field(message: bytes, key: bytes, following: bytes) -> str | None:
    """The plain string value of the LAST `key` in a JSON object, if the next key is `following`;
    None for null, escapes, or any other shape (the caller then decodes the whole message)."""
    start = message.rfind(key)
    if start < 0:
        return None
    start += len(key)
    if message[start : start + 1] != b'"':
        return None
    end = message.find(b'"', start + 1)
    if end < 0 or not message.startswith(following, end + 1):
        return None
    value = message[start + 1 : end]
    if b"\\" in value:
        return None
    return value.decode()


class HubRedisManager(socketio.AsyncRedisManager, LocalFanout):
    """Redis fan-out between instances; counts the publishes python-socketio gives up on.

    Every instance receives every instance's events. An emit for a room with no client here (a
    market nobody watches on this instance, a customer connected elsewhere) is dropped before it
    is decoded, and so is this instance's own emit coming back (delivered locally already)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.publish_failures = 0
        self.publish_failure_observers: list[Callable[[], None]] = []
        self.skipped_messages = 0
        self._own_tail = f'"host_id":"{self.host_id}"}}'.encode()

    async def _listen(self) -> Any:
        async for message in super()._listen():
            if self.wanted(message):
                yield message
            else:
                self.skipped_messages += 1

    def wanted(self, message: Any) -> bool:
        """Whether a pub/sub message may concern this instance, judged from its bytes. Relies on
        the layout python-socketio publishes (`{"method":"emit",…,"data":…,"namespace":…,
        "room":…,"skip_sid":…,"callback":…,"host_id":…}`: `data` precedes `namespace`, so the last
        `"room"` key is the message's own); anything else is decoded as usual."""
        if not isinstance(message, bytes) or not message.startswith(b'{"method":"emit"'):
            return True
        if message.endswith(self._own_tail):
            return False
        namespace = _string_field(message, b',"namespace":', b',"room":')
        room = _string_field(message, b',"room":', b',"skip_sid":')
        if namespace is None or room is None:
            return True
        return bool(self.rooms.get(namespace, {}).get(room))

    async def _publish(self, data: Any) -> Any:
        result = await super()._publish(data)
        if result is None:
            # AsyncRedisManager logged "giving up" and returned: the event reached no other
            # instance. The stream history is what heals this (clients replay on the gap).
            self.publish_failures += 1
            for observer in self.publish_failure_observers:
                observer()
        return result


def redis_manager(settings: Settings, *, write_only: bool = False) -> HubRedisManager:
    assert settings.redis_url is not None
    return HubRedisManager(
        settings.redis_url,
        channel=settings.redis_channel,
        write_only=write_only,
        json=orjson_json,
        redis_options={"socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS},
    )


class OriginPolicy:
    """Which browser origins may open a Socket.IO session: the hub's own origin (the pages it
    serves), and CORS_ORIGINS. Never any origin. X-Forwarded-Proto/Host count only behind a
    trusted proxy (TRUSTED_PROXY_COUNT > 0)."""

    def __init__(self, origins: list[str], *, trust_forwarded: bool) -> None:
        self.origins = frozenset(origins)
        self.trust_forwarded = trust_forwarded

    def __call__(self, origin: str | None, environ: dict[str, Any] | None = None) -> bool:
        if origin in self.origins:
            return True
        return environ is not None and origin in self.own_origins(environ)

    def own_origins(self, environ: dict[str, Any]) -> set[str]:
        host = environ.get("HTTP_HOST")
        if not host:
            return set()
        # Either scheme: behind a TLS-terminating proxy the page is https, the hop to us http.
        own = {f"http://{host}", f"https://{host}"}
        if self.trust_forwarded:
            forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
            forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO", "http").split(",")[0].strip()
            own.add(f"{forwarded_proto}://{forwarded_host}")
        return own


def build_server(settings: Settings) -> HubServer:
    manager: socketio.AsyncManager = redis_manager(settings) if settings.redis_url else HubManager()
    return HubServer(
        max_queue_bytes=settings.socket_max_queue_bytes,
        events_per_second=settings.socket_events_per_second,
        events_burst=settings.socket_events_burst,
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
