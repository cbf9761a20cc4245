"""Socket.IO client managers: who is in which room, and fan-out of emits (in process, or between
instances through Redis pub/sub, python-socketio's AsyncRedisManager).

Every python-socketio private name used here is listed in hub/realtime/internals.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio

from hub.metrics import HubMetrics
from hub.realtime.codec import orjson_json
from hub.realtime.delivery import Delivery
from hub.realtime.revocation import REVOKE
from hub.realtime.room_channels import RoomChannels
from hub.realtime.sid_rooms import SidRoomsManager
from hub.realtime.streams import is_account_room
from hub.settings import Settings

log = logging.getLogger(__name__)

REDIS_CONNECT_TIMEOUT_SECONDS = 2
# How long a client joining a room waits for this instance's subscription to its channel (not at all
# while Redis is known to be down); past it the client goes on: a publish it then misses shows as a gap
# in `seq`, which its replay fills.
SUBSCRIBE_WAIT_SECONDS = 5
# The room-channel messages of the emits made inside `publishing_together()` (per task).
_together: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar("together", default=None)


class LocalFanout(SidRoomsManager):
    """Local delivery through Delivery.broadcast. In the Redis manager's class order this sits
    below the pub/sub layer, so events from other instances take the same path. Disconnects leave
    only the sid's own rooms (SidRoomsManager)."""

    async def emit(  # noqa: PLR0917 - python-socketio's signature
        self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
        callback: Any = None, to: Any = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        room = to or room
        end_room = getattr(self.server, "end_room", None)  # HubServer's (no import of server.py here)
        if event == REVOKE and end_room is not None and isinstance(room, str):
            # Not an event for clients: this instance disconnects its participants of the room.
            await end_room(namespace, room, data)
            return
        delivery = getattr(self.server, "delivery", None)
        if (
            callback is None
            and isinstance(delivery, Delivery)
            and delivery.broadcast(event, data, namespace, room, skip_sid)
        ):
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
    """Redis fan-out between instances.

    An emit to one named room goes on that room's own sharded channel (hub/realtime/room_channels.py),
    which an instance subscribes to while the room has members connected to it. Everything else (an
    emit to a whole namespace or to several rooms, disconnects, room changes of remote clients,
    callbacks, and revocations to a user's `account:` room) goes on the one shared channel, as
    python-socketio does, and every instance hears it;
    there an emit for a room with no client here is dropped before it is decoded, and so is this
    instance's own emit coming back (delivered locally already). Publishes python-socketio gives up
    on (Redis down) are counted: the history heals them (clients replay on the gap)."""

    def __init__(
        self, url: str, *, channel: str, metrics: HubMetrics, write_only: bool = False, room_channels: bool = True,
        redis_options: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        options = redis_options or {}
        super().__init__(url, channel=channel, write_only=write_only, json=orjson_json, redis_options=dict(options))
        self.metrics = metrics
        self.publish_failures = 0
        self._own_tail = f'"host_id":"{self.host_id}"}}'.encode()
        self.room_channels = (
            RoomChannels(url, redis_options=dict(options), on_message=self._room_message) if room_channels else None
        )
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()

    def room_channel(self, namespace: str, room: str) -> str:
        return f"{self.channel}#{namespace}#{room}#"

    # Rooms: subscribe with the first local member, unsubscribe with the last

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        new = self._has_own_channel(sid, room) and room not in self.rooms.get(namespace, {})
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if new and self.room_channels is not None:
            self.room_channels.want(self.room_channel(namespace, room))

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        if (
            self.room_channels is not None
            and self._has_own_channel(sid, room)
            and room not in self.rooms.get(namespace, {})
        ):
            self.room_channels.drop(self.room_channel(namespace, room))

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        """Returns once this instance receives the room's live events (or after a bounded wait if
        Redis does not confirm): a client that then reads its history misses nothing in between."""
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if (
            self.room_channels is not None
            and self._has_own_channel(sid, room)
            and self.rooms.get(namespace, {}).get(room)
        ):
            await self.room_channels.ready(self.room_channel(namespace, room), SUBSCRIBE_WAIT_SECONDS)

    @staticmethod
    def _has_own_channel(sid: str, room: Any) -> bool:
        """A room of its own channel: not the whole namespace (None), not a client's own sid room, not
        an account room. Every connection is in its user's account room, which only ever gets a
        revocation (rare): a channel of its own would cost a SSUBSCRIBE, its confirmation and a
        SUNSUBSCRIBE per connection; on the shared channel, which every instance always hears, it
        costs nothing until a revocation comes."""
        return isinstance(room, str) and room != sid and not is_account_room(room)

    # Publishing

    def _room_channel_of(self, data: Any) -> str | None:
        if self.room_channels is None or not isinstance(data, dict) or data.get("method") != "emit":
            return None
        namespace, room = data.get("namespace") or "/", data.get("room")
        if data.get("callback") is not None or not isinstance(room, str) or self.is_sid_room(namespace, room):
            return None
        if is_account_room(room):  # revocations: on the shared channel (see _has_own_channel)
            return None
        return self.room_channel(namespace, room)

    async def _publish(self, data: Any) -> Any:
        channel = self._room_channel_of(data)
        if channel is None:
            result = await super()._publish(data)
        else:
            result = await self._publish_to_room(channel, data)
        if result is None:
            # Given up (logged): the event reached no other instance. The stream history is what
            # heals this (clients replay on the gap).
            self.publish_failures += 1
            self.metrics.event_publish_failed("redis_publish")
        return result

    async def _publish_to_room(self, channel: str, data: Any) -> int | None:
        assert self.room_channels is not None
        message = self.json.dumps(data)
        together = _together.get()
        if together is not None:
            together.append((channel, message))
            return 0  # sent (and counted if lost) when publishing_together() ends
        for attempt in range(2):
            try:
                return await self.room_channels.publish(channel, message)
            except Exception as exc:  # noqa: BLE001 - logged and counted, as python-socketio does
                self._publish_error(attempt, exc)
        return None

    @contextlib.asynccontextmanager
    async def publishing_together(self) -> AsyncIterator[None]:
        """The room-channel publishes of the emits made inside (by this task) leave at the end, in
        the order emitted, in one round trip: a placed order's two events cost one. Local delivery
        is not deferred. At most once, like every publish: a lost batch is logged and counted per
        message, and the history heals it."""
        together: list[tuple[str, str]] = []
        token = _together.set(together)
        try:
            yield
        finally:
            _together.reset(token)
            if together:
                await self._publish_together(together)

    async def _publish_together(self, messages: list[tuple[str, str]]) -> None:
        assert self.room_channels is not None
        for attempt in range(2):
            try:
                await self.room_channels.publish_many(messages)
                return
            except Exception as exc:  # noqa: BLE001 - logged and counted, as python-socketio does
                self._publish_error(attempt, exc)
        for _ in messages:
            self.publish_failures += 1
            self.metrics.event_publish_failed("redis_publish")

    @staticmethod
    def _publish_error(attempt: int, exc: Exception) -> None:
        log.error(
            "cannot publish to redis room channel%s", "... retrying" if attempt == 0 else "... giving up",
            extra={"redis_exception": type(exc).__name__},
        )  # fmt: skip

    # Receiving: the shared channel and the room channels feed one stream (python-socketio's listener)

    async def _listen(self) -> Any:
        pump = asyncio.ensure_future(self._pump_shared_channel())
        try:
            while True:
                message = await self._inbox.get()
                if self.wanted(message):
                    yield message
        finally:
            pump.cancel()

    async def _pump_shared_channel(self) -> None:
        while True:
            try:
                async for message in super()._listen():
                    self.metrics.redis_shared_messages.inc()
                    self._inbox.put_nowait(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis shared channel listener failed; listening again")
            await asyncio.sleep(1)

    def _room_message(self, data: bytes) -> None:
        self.metrics.redis_room_messages.inc()
        self._inbox.put_nowait(data)

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

    async def aclose(self) -> None:
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await thread
        if self.room_channels is not None:
            await self.room_channels.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()


def redis_manager(settings: Settings, metrics: HubMetrics, *, write_only: bool = False) -> HubRedisManager:
    assert settings.redis_url is not None
    return HubRedisManager(
        settings.redis_url,
        channel=settings.redis_channel,
        metrics=metrics,
        write_only=write_only,
        room_channels=settings.redis_room_channels,
        redis_options={"socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS},
    )
