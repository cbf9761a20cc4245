"""Delivery of events to this instance's clients: encoded once, bounded per connection.

- A broadcast is encoded once (Socket.IO packet, then the Engine.IO frame text, cached in the one
  Packet object every recipient shares) and put straight into each recipient's outgoing queue,
  without a task per recipient; when nothing is ahead of it, its WebSocket frame is written to the
  connection's transport directly.
- Each connection's outgoing queue counts its bytes; past `max_queue_bytes` the connection is cut (it
  reconnects and recovers from the event history) instead of growing the server's memory.
- Deliveries to a connection can be held while its missed events are replayed, so a reconnecting
  client sees the replay first and no event twice.
- A stream event this instance has delivered already (the repair pass's re-emit of an event whose
  writer had emitted it) is not delivered again: no connection is sent one event twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from hub.metrics import HubMetrics
from hub.realtime.engineio_server import PacketQueue, websocket_text_frame
from hub.realtime.streams import market_order_event

log = logging.getLogger(__name__)

# A broadcast is written straight to a WebSocket's transport while less than this waits in it.
DIRECT_WRITE_LIMIT = 64 * 1024
# How long a cut connection's later packets are ignored (its close is on its way).
CUT_MEMORY_SECONDS = 5
# How long after a replay a late live emit of a replayed event is still recognised (see Delivery.floor).
FLOOR_SECONDS = 60
# What an instance remembers of the stream events it delivered, to recognise a second emit of one
# (see Delivery.seen_before): the last RECENT_SEQS seqs of the RECENT_STREAMS streams delivered
# most recently (~0.3 KB each). A re-emit comes a repair pass (10-40 s) after the event.
RECENT_STREAMS = 20_000
RECENT_SEQS = 8

# Told the market whenever an order event of a market reaches this instance's delivery (its own or another
# instance's): the composition root passes the stats pusher's `market_changed`.
MarketChanged = Callable[[str], None]


class Delivery:
    """Puts events into the outgoing queues of this instance's connections. `manager` knows the
    rooms and participants, `engine` the Engine.IO sockets; both belong to one Socket.IO server."""

    def __init__(
        self,
        *,
        manager: socketio.AsyncManager,
        engine: Any,
        packet_class: type[sio_packet.Packet],
        max_queue_bytes: int,
        metrics: HubMetrics,
        market_changed: MarketChanged,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.market_changed = market_changed
        self.engine = engine
        self.packet_class = packet_class
        self.max_queue_bytes = max_queue_bytes
        # sid -> deliveries held back while that client's missed events are replayed
        self.holds: dict[str, list[tuple[str, Any]]] = {}
        # sid -> stream -> seq: live events at or below it were sent by that client's replay (or it had
        # them already); dropped if their emit comes late (see floor())
        self.floors: dict[str, dict[str, int]] = {}
        self.cutting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # stream -> the last seqs of it this instance delivered, least recently delivered stream first
        self._recent: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def broadcast(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> bool:
        """Deliver to this instance's participants of a room, encoding once. False when the
        packet needs the stock path (binary attachments)."""
        stream, seq = _stream_seq(data)
        if stream is not None and self.seen_before(stream, seq):  # type: ignore[arg-type]
            return True
        market_id = market_order_event(event, namespace, room)
        if market_id is not None:
            self.market_changed(market_id)
        rooms = self.manager.rooms.get(namespace)
        if not rooms or (isinstance(room, str) and room not in rooms):
            return True  # nobody here: not even an encode
        frame = self.frame(namespace, event, data)
        if frame is None:
            return False
        if isinstance(data, dict) and "seq" in data:  # a stream event, going to this instance's clients
            self.metrics.event_delivered(namespace)
        skip = _as_set(skip_sid)
        holds, floors = self.holds, self.floors
        for sid, eio_sid in self.manager.get_participants(namespace, room):
            if sid in skip:
                continue
            if seq is not None:
                floor = floors.get(sid)
                if floor is not None and seq <= floor.get(stream, -1):  # type: ignore[arg-type]
                    continue
            if holds:
                held = holds.get(sid)
                if held is not None:
                    held.append((event, data))
                    continue
            self.enqueue(eio_sid, frame, namespace, bounded=True)
        return True

    def seen_before(self, stream: str, seq: int) -> bool:
        """Whether this instance delivered the event already (and remember it now). The repair pass
        emits a stored event again when its writer may have died before emitting it
        (docs/architecture.md, "Events"); if the writer had emitted it, every present member of the
        room has it already: live, or from the history replay that let it join after it (an
        event is stored before it is emitted). Noted even when nobody here is in the room."""
        recent = self._recent.get(stream)
        if recent is not None:
            if seq in recent:
                return True
            self._recent.move_to_end(stream)
        self._recent[stream] = (*(recent or ())[1 - RECENT_SEQS :], seq)
        if len(self._recent) > RECENT_STREAMS:
            self._recent.popitem(last=False)
        return False

    def send_now(self, sid: str, namespace: str, event: str, data: Any) -> None:
        """Queue one event for one client, synchronously (no other delivery can slip in between
        two calls). Not bounded: used for replays, which the history already bounds."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        frame = self.frame(namespace, event, data)
        if eio_sid is not None and frame is not None:
            self.enqueue(eio_sid, frame, namespace, bounded=False)

    def hold(self, sid: str) -> None:
        self.holds[sid] = []

    def release(self, sid: str) -> list[tuple[str, Any]]:
        self.floors.pop(sid, None)
        return self.holds.pop(sid, [])

    def floor(self, sid: str, last: dict[str, int]) -> None:
        """After a replay: the client has every event of these streams up to these seqs. An event is
        stored in the history before it is emitted, so a replay can hold one whose live emit has not
        reached this instance yet (a busy publisher, Redis latency); when it comes, it is dropped for
        this client instead of arriving twice. Kept for FLOOR_SECONDS, far longer than an emit lags."""
        if last:
            self.floors[sid] = dict(last)
            asyncio.get_running_loop().call_later(FLOOR_SECONDS, self._drop_floor, sid, self.floors[sid])

    def _drop_floor(self, sid: str, floor: dict[str, int]) -> None:
        if self.floors.get(sid) is floor:
            del self.floors[sid]

    def has_local_room(self, namespace: str, room: str) -> bool:
        return bool(self.manager.rooms.get(namespace, {}).get(room))

    def frame(self, namespace: str, event: str, data: Any) -> eio_packet.Packet | None:
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

    def enqueue(self, eio_sid: str, frame: eio_packet.Packet, namespace: str, *, bounded: bool) -> None:
        socket = self.engine.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            return
        if write_direct(socket, frame):
            return
        queue = socket.queue
        queue.put_nowait(frame)
        if bounded and isinstance(queue, PacketQueue) and queue.nbytes > self.max_queue_bytes:
            self._cut_slow_client(eio_sid, socket, namespace)

    def _cut_slow_client(self, eio_sid: str, socket: Any, namespace: str) -> None:
        if eio_sid in self.cutting:
            return
        log.warning("slow client disconnected", extra={"namespace": namespace, "queued_bytes": socket.queue.nbytes})
        self.metrics.slow_client_cut(namespace)
        self.cut(eio_sid, socket)

    def cut(self, eio_sid: str, socket: Any) -> None:
        """Drop a connection now, whatever state its writer is in; the client reconnects."""
        if eio_sid in self.cutting:
            return
        self.cutting.add(eio_sid)
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
        await asyncio.sleep(CUT_MEMORY_SECONDS)
        self.cutting.discard(eio_sid)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def write_direct(socket: Any, frame: eio_packet.Packet) -> bool:
    """Write the broadcast's ready-made WebSocket frame to the socket's transport, skipping its
    writer task, when nothing is ahead of it (queue empty, nothing taken but unwritten) and the
    transport is not backed up. Order is kept: whatever was queued before is already in the
    transport. Otherwise the frame takes the queue."""
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


def _stream_seq(data: Any) -> tuple[str | None, int | None]:
    if isinstance(data, dict):
        stream, seq = data.get("stream"), data.get("seq")
        if isinstance(stream, str) and isinstance(seq, int):
            return stream, seq
    return None, None


def _as_set(skip_sid: Any) -> set[Any]:
    if skip_sid is None:
        return set()
    if isinstance(skip_sid, str):
        return {skip_sid}
    if isinstance(skip_sid, Iterable):
        return set(skip_sid)
    return {skip_sid}
