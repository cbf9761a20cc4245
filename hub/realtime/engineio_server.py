"""The Engine.IO layer of the hub: python-engineio's server, socket, outgoing queue and aiohttp
WebSocket driver, each adjusted (the wire protocol does not change):
- the outgoing queue counts its bytes, so a slow client can be cut (hub/realtime/delivery.py);
- the WebSocket driver remembers the TCP transport, so a broadcast's ready-made frame can be
  written past the socket's writer task, and it does not negotiate per-message deflate;
- the socket has fewer tasks per connection (memory per idle dashboard).
Every python-engineio private name used here is listed in hub/realtime/internals.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import engineio
from aiohttp import web
from engineio import async_socket as eio_async_socket
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp

log = logging.getLogger(__name__)


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
