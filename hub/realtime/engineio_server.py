"""The Engine.IO layer of the hub: python-engineio's server, socket, outgoing queue and aiohttp
WebSocket driver, each adjusted (the wire protocol does not change):
- the outgoing queue counts its bytes, so a slow client can be cut (hub/realtime/delivery.py);
- the WebSocket driver remembers the TCP transport, so a broadcast's ready-made frame can be
  written past the socket's writer task, and it does not negotiate per-message deflate;
- the socket holds less per idle connection (memory per idle dashboard): fewer tasks, no timer of
  its own, and a session opened on WebSocket is served outside engineio's connect calls.
Every python-engineio private name used here is listed in hub/realtime/internals.py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import engineio
from aiohttp import web
from engineio import async_socket as eio_async_socket
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp

from hub.realtime.timer_wheel import TimerWheel

log = logging.getLogger(__name__)


class PacketQueue:
    """An Engine.IO socket's outgoing queue: the part of asyncio.Queue's interface engineio uses (put,
    put_nowait, get, get_nowait, empty, qsize, task_done, join), in a fraction of its memory: an
    asyncio.Queue holds three deques and an Event (~3 KB) for every idle connection, this one a deque
    only while it holds packets and a future only while someone waits. It also knows roughly how
    many bytes it holds, and, once the socket is on WebSocket, how many packets its writer has taken
    but not yet written; `on_put` (set by LeanSocket) starts a writer when the first packet comes."""

    __slots__ = ("_getter", "_items", "_joiner", "_unfinished", "in_flight", "nbytes", "on_put", "socket")

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getter: asyncio.Future[None] | None = None
        self._joiner: asyncio.Future[None] | None = None
        self._unfinished = 0
        self.nbytes = 0
        self.in_flight = 0
        self.socket: Any = None  # set when the socket opens its WebSocket
        self.on_put: Callable[[], None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        self.nbytes += _size(item)
        self._unfinished += 1
        getter, self._getter = self._getter, None
        if getter is not None and not getter.done():
            getter.set_result(None)
        if self.on_put is not None:
            self.on_put()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        self.nbytes -= _size(item)
        if self.socket is not None and self.socket.upgraded:
            self.in_flight += 1
        return item

    async def get(self) -> Any:
        while not self._items:
            if self._getter is None or self._getter.done():
                self._getter = asyncio.get_running_loop().create_future()
            await self._getter
        return self.get_nowait()

    def task_done(self) -> None:
        self._unfinished = max(0, self._unfinished - 1)
        if not self._unfinished and self._joiner is not None and not self._joiner.done():
            self._joiner.set_result(None)

    async def join(self) -> None:
        while self._unfinished:
            if self._joiner is None or self._joiner.done():
                self._joiner = asyncio.get_running_loop().create_future()
            await self._joiner

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


# What a WebSocket's environ keeps once it is open (the rest is in the aiohttp request it holds).
ENVIRON_KEPT = frozenset({
    "aiohttp.request", "REMOTE_ADDR", "QUERY_STRING", "PATH_INFO", "HTTP_HOST", "HTTP_ORIGIN", "HTTP_USER_AGENT",
    "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO", "HTTP_X_REAL_IP",
})  # fmt: skip


def compact(environ: dict[str, Any]) -> None:
    """Shrink the WSGI-style environ engineio builds per request (a key per header, ~1 KB) to what the
    hub reads, in place: engineio's frames and python-socketio (`environ[eio_sid]`, given to each
    namespace's connect handler) hold this same dict for the connection's whole life."""
    kept = {key: environ[key] for key in ENVIRON_KEPT if key in environ}
    environ.clear()
    environ.update(kept)


class TrackedWebSocket(eio_aiohttp.WebSocket):
    """engineio's aiohttp WebSocket, with three changes:
    - it remembers the socket's TCP transport: broadcasts can be written to it directly (see
      Delivery.write_direct), and a stalled client can be cut off (its writer is stuck in a
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
        compact(environ)
        self.environ = environ
        if isinstance(self.owner, LeanSocket) and self.owner.opens_on_websocket():
            # The connection's life runs in HubEngineServer.handle_request, once engineio's calls that
            # led here have returned: their frames are not held for as long as the connection lasts.
            request[OPENED_WEBSOCKET] = self
        else:
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


# Set on the aiohttp request by TrackedWebSocket for a session opened on WebSocket, which
# HubEngineServer.handle_request then serves.
OPENED_WEBSOCKET = web.RequestKey("opened_websocket", TrackedWebSocket)


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
    """engineio's socket with less held per idle connection (memory per idle dashboard), same
    packets on the wire:
    - no timer of its own: the next ping, and the pong deadline after it, wait in the server's
      TimerWheel (one timer per second for all sockets); a pong overdue ends the connection, which
      also bounds how long a WebSocket whose socket has closed can stay open;
    - a session opened on WebSocket is served once engineio's connect calls have returned
      (TrackedWebSocket.serve), by one reader that waits on aiohttp's WebSocket directly, without a
      task or a timeout per message;
    - its writer is a task only while there is something to write (engineio's waits in the queue,
      in a task of its own plus one for the timeout)."""

    def schedule_ping(self) -> None:
        # engineio calls this at connect and on each pong: the ping it answered has met its deadline.
        if self.last_ping:  # type: ignore[has-type]  # engineio's untyped attribute
            self.last_ping = None
            timers: TimerWheel = self.server.timers
            pong_deadline: int | None = getattr(self, "hub_pong_deadline", None)
            if pong_deadline is not None:
                timers.cancel(pong_deadline, self._pong_due)
                self.hub_pong_deadline = None
            timers.call_later(self.server.ping_interval, self._ping_due, self._ping_due)

    def _ping_due(self) -> None:
        if self.closing or self.closed:
            self._end_websocket()  # the client was told (CLOSE) a ping interval ago at least
        else:
            self.server.start_background_task(self._send_ping_now)

    async def _send_ping_now(self) -> None:
        self.last_ping = time.time()  # type: ignore[assignment]  # engineio's untyped attribute
        # Keyed by the bound method (equal for the same socket), so a pong can cancel it.
        self.hub_pong_deadline = self.server.timers.call_later(self.server.ping_timeout, self._pong_due, self._pong_due)
        with contextlib.suppress(engineio.exceptions.SocketIsClosedError):  # closed since the timer fired
            await self.send(eio_packet.Packet(eio_packet.PING))

    def _pong_due(self) -> None:
        # Not cancelled by a pong (schedule_ping): the peer is gone or too slow.
        self.hub_pong_deadline = None
        self._end_websocket()

    def _end_websocket(self) -> None:
        """The peer is gone or has stopped answering: drop its WebSocket (the reader then sees the
        end and closes the socket). Long-polling sockets are closed by engineio's service task."""
        transport = getattr(self, "hub_transport", None)
        if self.upgraded and transport is not None and not transport.is_closing():
            transport.abort()

    def opens_on_websocket(self) -> bool:
        """A new session straight on WebSocket (not an upgrade from long-polling): the lean path."""
        return not self.connected and isinstance(self.queue, PacketQueue)

    async def _websocket_handler(self, ws: Any) -> Any:
        if not self.opens_on_websocket():
            # An upgrade from long-polling: engineio's own path (rare; the dashboards use WebSocket).
            return await super()._websocket_handler(ws)
        self.connected = True
        self.upgraded = True
        queue = self.queue
        # No writer task while there is nothing to write (broadcasts to an idle connection are written
        # directly, hub/realtime/delivery.py): one starts with the first queued packet and ends when
        # the queue is empty.
        self.hub_writer: asyncio.Future[None] | None = None
        self.hub_ws = ws
        queue.on_put = self._start_writer
        if not queue.empty():
            self._start_writer()
        # The reader: each packet the client sends goes to engineio until the connection ends. No
        # timeout here: a silent peer misses its pong (_pong_due) and its connection is dropped.
        websocket: web.WebSocketResponse = ws._sock
        try:
            while True:
                try:
                    message = await websocket.receive()
                except (Exception, asyncio.CancelledError):  # noqa: BLE001
                    # Broken, or cancelled by aiohttp when the peer went away (a cut slow client):
                    # the connection ends and is closed below, as engineio does.
                    return
                carry_on = await self._hand_over(message.data)
                del message  # not held while the next one is awaited (a CONNECT carries a token)
                if not carry_on:
                    return
        finally:
            await self._finish()

    async def _hand_over(self, data: Any) -> bool:
        """Give one message to engineio; False when the connection is to end."""
        if not isinstance(data, str | bytes) or len(data) > self.server.max_http_buffer_size:
            return False  # closed (a close code or None, as engineio's wait sees it) or too large
        try:
            packet = eio_packet.Packet(encoded_packet=data)
        except (ValueError, IndexError):  # not an Engine.IO packet: the connection ends
            log.warning("socket packet refused; disconnecting", extra={"why": "not an Engine.IO packet"})
            return False
        try:
            await self.receive(packet)
        except engineio.exceptions.SocketIsClosedError:
            return False
        except engineio.exceptions.UnknownPacketError:
            pass
        except Exception:
            log.exception("engine.io receive error")
        return True

    async def _finish(self) -> None:
        """Let the writer write what is queued and close the WebSocket, then close the socket. aiohttp
        cancels this (the handler's) task when the connection is lost: the writer is shielded from that,
        and the socket is closed all the same (else its rooms would outlive it)."""
        queue = self.queue
        queue.put_nowait(None)  # the writer's last packet: it closes the WebSocket
        cancelled = False
        try:
            while (writer := self.hub_writer) is not None and not writer.done():
                await asyncio.shield(writer)
        except asyncio.CancelledError:
            cancelled = True
        queue.on_put = None
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        if cancelled:
            raise asyncio.CancelledError

    def _start_writer(self) -> None:
        # A writer that has returned may not have run its done callbacks yet: it counts as gone.
        if self.hub_writer is None or self.hub_writer.done():
            self.hub_writer = asyncio.ensure_future(self._write_loop(self.hub_ws))

    async def _write_loop(self, ws: Any) -> None:
        """Write what is queued until the queue is empty (the next put starts another loop); a None
        (the reader's end) closes the WebSocket. The finished task is let go (~0.6 KB per idle
        connection otherwise)."""
        try:
            await self._write_queued(ws)
        finally:
            if self.hub_writer is asyncio.current_task():
                self.hub_writer = None

    async def _write_queued(self, ws: Any) -> None:
        queue = self.queue
        while True:
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            queue.task_done()
            if pkt is None:
                await ws.close()
                return
            try:
                await ws.send(pkt.encode())
            except Exception:  # noqa: BLE001 - the peer is gone: stop writing, drop the rest
                queue.on_put = None
                await ws.close()
                return


class HubEngineServer(engineio.AsyncServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timers = TimerWheel()  # the sockets' pings and pong deadlines
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
            response = await super().handle_request(*args, **kwargs)
        except KeyError:
            return web.json_response("Session is disconnected", status=400)
        request = args[0] if args else None  # aiohttp calls a route's handler with the request
        opened = request.pop(OPENED_WEBSOCKET, None) if isinstance(request, web.BaseRequest) else None
        if opened is None:
            return response
        # A session opened on WebSocket lives here (TrackedWebSocket.__call__), in this frame rather
        # than one of its own; then what engineio's connect does once its WebSocket handler returns.
        socket = opened.owner
        try:
            await opened.handler(opened)
        finally:
            if socket is not None and socket.closed:
                self.sockets.pop(socket.sid, None)
        return response
