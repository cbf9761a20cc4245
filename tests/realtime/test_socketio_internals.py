"""The python-socketio/python-engineio internals the hub relies on (hub/realtime/internals.py) are
there, with the parameters the hub expects, in the installed versions: an upgrade that changes one
fails here rather than quietly in production."""

from __future__ import annotations

import inspect
from typing import Any

import engineio
import orjson
import pytest
import socketio
from engineio import async_socket, packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import async_pubsub_manager

from hub.metrics import HubMetrics
from hub.realtime import internals
from hub.realtime.admission import HandshakeGate
from hub.realtime.delivery import Delivery
from hub.realtime.engineio_server import HubEngineServer, LeanSocket, PacketQueue, TrackedWebSocket
from hub.realtime.redis_manager import HubManager, HubRedisManager, LocalFanout
from hub.realtime.server import HubServer
from hub.realtime.sid_rooms import SidRoomsManager


def test_each_internal_exists_with_the_parameters_the_hub_expects() -> None:
    assert internals.problems() == []
    internals.verify()


def test_a_changed_internal_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = internals.Internal("engineio.async_socket.AsyncSocket", "poll", ("timeout",), "a test")
    gone = internals.Internal("engineio.async_socket.AsyncSocket", "_no_such_method", (), "a test")
    monkeypatch.setattr(internals, "INTERNALS", (*internals.INTERNALS, changed, gone))
    found = internals.problems()
    assert found == [
        "engineio.async_socket.AsyncSocket.poll: parameters (), the hub expects ('timeout',) (a test)",
        "engineio.async_socket.AsyncSocket._no_such_method: missing (a test)",
    ]
    with pytest.raises(internals.InternalsChanged, match="_no_such_method"):
        internals.verify()


HUB_SUBCLASSES = (
    HubEngineServer, LeanSocket, PacketQueue, TrackedWebSocket, HubServer,
    SidRoomsManager, LocalFanout, HubRedisManager,
)  # fmt: skip


def test_every_override_of_a_library_method_is_listed() -> None:
    listed = {(internal.owner, internal.name) for internal in internals.INTERNALS}
    unlisted = []
    for subclass in HUB_SUBCLASSES:
        for name, value in vars(subclass).items():
            if not callable(value) or name in {"__init__", "__module__"}:
                continue
            for base in subclass.__mro__[1:]:
                if not base.__module__.startswith(("socketio.", "engineio.")) or name not in vars(base):
                    continue
                if (f"{base.__module__}.{base.__qualname__}", name) not in listed:
                    unlisted.append(f"{subclass.__name__}.{name} overrides {base.__module__}.{base.__qualname__}")
                break
    assert unlisted == []


def test_the_instance_attributes_the_hub_reads_are_set_by_the_library() -> None:
    server = socketio.AsyncServer(async_mode="aiohttp")
    sock = async_socket.AsyncSocket(server.eio, "sid")
    manager = socketio.AsyncRedisManager("redis://127.0.0.1:6379/0", write_only=True)
    instances: dict[str, Any] = {
        "engineio.async_server.AsyncServer": server.eio,
        "engineio.async_socket.AsyncSocket": sock,
        "engineio.async_drivers.aiohttp.WebSocket": eio_aiohttp.WebSocket(lambda ws: None, server.eio),
        "engineio.packet.Packet": packet.Packet(packet.MESSAGE, "x"),
        "socketio.async_server.AsyncServer": server,
        "socketio.base_manager.BaseManager": server.manager,
        "socketio.async_redis_manager.AsyncRedisManager": manager,
    }
    assert set(instances) == set(internals.INSTANCE_ATTRIBUTES)
    missing = [
        f"{owner}.{name}"
        for owner, names in internals.INSTANCE_ATTRIBUTES.items()
        for name in names
        if not hasattr(instances[owner], name) and not _assigned_in_initialize(name)
    ]
    assert missing == []
    assert "websocket" in server.eio._async  # the driver HubEngineServer replaces
    assert server.eio.reason.TRANSPORT_CLOSE


def _assigned_in_initialize(name: str) -> bool:
    """AsyncPubSubManager sets `thread` (its listener task) in initialize(), which connects."""
    source = inspect.getsource(async_pubsub_manager.AsyncPubSubManager.initialize)
    return f"self.{name} = " in source


def test_an_engineio_packet_encodes_once() -> None:
    frame = packet.Packet(packet.MESSAGE, '2["e"]')
    first = frame.encode()
    frame.data = "changed"
    assert frame.encode() is first  # Delivery shares one encoded frame among a broadcast's recipients


async def test_the_pubsub_message_layout_the_redis_manager_reads() -> None:
    """HubRedisManager.wanted reads `namespace` and `room` from the bytes python-socketio publishes."""
    published: list[bytes] = []

    class Capture(async_pubsub_manager.AsyncPubSubManager):
        async def _handle_emit(self, message: Any) -> None:
            pass

        async def _publish(self, data: Any) -> None:
            published.append(orjson.dumps(data))

    await Capture().emit("order:created", {"room": "decoy"}, namespace="/dashboard", room="market:here")
    assert published[0].startswith(b'{"method":"emit","event":"order:created","data":')
    reader = HubRedisManager(
        "redis://127.0.0.1:6379/0", channel="unused-by-this-test", metrics=HubMetrics(), write_only=True
    )
    reader.rooms = {"/dashboard": {"market:here": {"sid1": "eio1"}}}
    assert reader.wanted(published[0])
    reader.rooms = {"/dashboard": {"market:elsewhere": {"sid1": "eio1"}}}
    assert not reader.wanted(published[0])


def test_the_hub_server_uses_the_hub_layers() -> None:
    server = HubServer(
        max_queue_bytes=1 << 20, events_per_second=10, events_burst=10, client_manager=HubManager(),
        handshakes=HandshakeGate(limit=1, queue=1, max_wait=5), metrics=HubMetrics(),
        market_changed=lambda market_id: None,
    )  # fmt: skip
    assert isinstance(server.eio, HubEngineServer)
    assert server.eio._async["websocket"] is TrackedWebSocket
    assert isinstance(server.eio.create_queue(), PacketQueue)
    assert isinstance(server.delivery, Delivery)
    assert engineio.async_server.async_socket.AsyncSocket in LeanSocket.__mro__
