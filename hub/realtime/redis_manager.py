"""Socket.IO client managers: who is in which room, and fan-out of emits (in process, or between
instances through Redis pub/sub, python-socketio's AsyncRedisManager).

Every python-socketio private name used here is listed in hub/realtime/internals.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio

from hub.realtime.codec import orjson_json
from hub.realtime.delivery import Delivery
from hub.realtime.revocation import REVOKE
from hub.settings import Settings

REDIS_CONNECT_TIMEOUT_SECONDS = 2


class LocalFanout(socketio.AsyncManager):
    """Local delivery through Delivery.broadcast. In the Redis manager's class order this sits
    below the pub/sub layer, so events from other instances take the same path."""

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
