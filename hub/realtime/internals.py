"""Every name of python-socketio and python-engineio the hub relies on beyond their documented API:
private methods it overrides or calls, undocumented classes it subclasses, attributes it reads.

`verify()` checks, in the installed versions, that each exists and (for a callable) takes the
parameters the hub's code expects; the hub calls it at start (hub/realtime/server.py) and
tests/realtime/test_socketio_internals.py in CI, so an upgrade that changes one fails loudly instead of
breaking the delivery path quietly. Attributes set on instances are checked by that test, on real
instances. docs/socketio-internals.md says, per override, which public hook would make it go away.
When a version changes one of these, adapt the hub's code and this list together.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib import metadata

# The versions this list was last checked against (requirements.lock pins them).
CHECKED_WITH = {"python-socketio": "5.18.1", "python-engineio": "4.15.1"}


@dataclass(frozen=True)
class Internal:
    owner: str  # dotted path of a module or class
    name: str
    # Parameter names after `self` ("*args", "**kwargs" for variadics); None: not called or overridden
    parameters: tuple[str, ...] | None
    use: str  # where the hub relies on it, and how


INTERNALS: tuple[Internal, ...] = (
    # Engine.IO: hub/realtime/engineio_server.py
    Internal(
        "engineio.async_server.AsyncServer",
        "_trigger_event",
        ("event", "*args", "**kwargs"),
        "HubEngineServer overrides it to swap the new socket's class to LeanSocket on `connect`",
    ),
    Internal(
        "engineio.async_server.AsyncServer",
        "create_queue",
        ("*args", "**kwargs"),
        "HubEngineServer returns a PacketQueue (bytes counted)",
    ),
    Internal(
        "engineio.async_server.AsyncServer",
        "handle_request",
        ("*args", "**kwargs"),
        "HubEngineServer answers 400, not 500, for a session closed mid-request, and serves a session opened "
        "on WebSocket once engineio's own call has returned (a non-dict result, the WebSocket, comes back as is)",
    ),
    Internal(
        "engineio.async_server.AsyncServer",
        "_handle_connect",
        ("environ", "transport", "jsonp_index"),
        "for a WebSocket session it returns what the socket's handle_get_request returned and forgets the socket "
        "only if closed by then: HubEngineServer.handle_request forgets it when the connection ends",
    ),
    Internal(
        "engineio.async_socket.AsyncSocket",
        "_upgrade_websocket",
        ("environ",),
        "calls the WebSocket driver with the socket's _websocket_handler and returns its result: TrackedWebSocket "
        "returns as soon as a new session's WebSocket is open",
    ),
    Internal(
        "engineio.async_server.AsyncServer",
        "start_background_task",
        ("target", "*args", "**kwargs"),
        "LeanSocket starts the ping send from a timer",
    ),
    Internal(
        "engineio.async_server",
        "async_socket",
        None,
        "engineio makes each socket as async_socket.AsyncSocket(server, sid) before `connect`",
    ),
    Internal(
        "engineio.async_socket.AsyncSocket",
        "schedule_ping",
        (),
        "LeanSocket overrides it: the next ping and its pong deadline in the server's TimerWheel, not a task",
    ),
    Internal(
        "engineio.async_socket.AsyncSocket",
        "_websocket_handler",
        ("ws",),
        "LeanSocket overrides it: one reader without a task or timeout per message, a writer only while needed",
    ),
    Internal(
        "engineio.async_socket.AsyncSocket",
        "poll",
        (),
        "long-polling reads PacketQueue with it: get, task_done, get_nowait",
    ),
    Internal("engineio.async_socket.AsyncSocket", "receive", ("pkt",), "LeanSocket's reader hands packets to it"),
    Internal("engineio.async_socket.AsyncSocket", "send", ("pkt",), "LeanSocket sends its pings with it"),
    Internal(
        "engineio.async_socket.AsyncSocket",
        "close",
        ("wait", "abort", "reason"),
        "LeanSocket and Delivery.cut close sockets with it",
    ),
    Internal(
        "engineio.async_drivers.aiohttp.WebSocket",
        "__call__",
        ("environ",),
        "TrackedWebSocket overrides it: keeps the transport, no per-message deflate",
    ),
    Internal(
        "engineio.async_drivers.aiohttp.WebSocket",
        "send",
        ("message",),
        "TrackedWebSocket overrides it to count packets written",
    ),
    Internal("engineio.async_drivers.aiohttp.WebSocket", "close", (), "LeanSocket's writer closes with it"),
    Internal(
        "engineio.packet.Packet",
        "__init__",
        ("packet_type", "data", "encoded_packet"),
        "Delivery builds MESSAGE frames; LeanSocket decodes what it reads",
    ),
    Internal(
        "engineio.packet.Packet",
        "encode",
        ("b64",),
        "Delivery relies on its cache (encode_cache): one encode shared by every recipient",
    ),
    Internal("engineio.exceptions", "SocketIsClosedError", None, "LeanSocket"),
    Internal("engineio.exceptions", "UnknownPacketError", None, "LeanSocket's reader"),
    # Socket.IO server: hub/realtime/server.py
    Internal("socketio.async_server.AsyncServer", "_engineio_server_class", (), "HubServer returns HubEngineServer"),
    Internal(
        "socketio.async_server.AsyncServer",
        "_handle_connect",
        ("eio_sid", "namespace", "data"),
        "HubServer runs the namespace's `connected` hook after the CONNECT packet is queued",
    ),
    Internal(
        "socketio.async_server.AsyncServer",
        "_send_packet",
        ("eio_sid", "pkt"),
        "HubServer refuses a handshake the admission gate has no room for (CONNECT_ERROR busy)",
    ),
    Internal(
        "socketio.async_server.AsyncServer",
        "_handle_eio_message",
        ("eio_sid", "data"),
        "HubServer refuses binary and malformed packets and rate-limits every packet",
    ),
    Internal(
        "socketio.async_server.AsyncServer",
        "_handle_event",
        ("eio_sid", "namespace", "id", "data"),
        "HubServer ignores reserved and non-string event names",
    ),
    Internal(
        "socketio.async_server.AsyncServer",
        "_trigger_event",
        ("event", "namespace", "*args"),
        "HubServer ends a connection whose session closed during its handshake (the namespace's disconnect)",
    ),
    Internal("socketio.base_manager.BaseManager", "pre_disconnect", ("sid", "namespace"), "HubServer._abandon"),
    Internal(
        "socketio.async_server.AsyncServer",
        "_handle_eio_disconnect",
        ("eio_sid", "reason"),
        "HubServer forgets the connection's rate limit",
    ),
    Internal(
        "socketio.packet.Packet",
        "__init__",
        ("packet_type", "data", "namespace", "id", "binary", "encoded_packet"),
        "Delivery encodes an EVENT once per broadcast",
    ),
    Internal("socketio.packet.Packet", "encode", (), "Delivery: a str, or a list when there are attachments"),
    # Managers: hub/realtime/redis_manager.py, hub/realtime/sid_rooms.py, hub/realtime/delivery.py
    Internal(
        "socketio.async_manager.AsyncManager",
        "emit",
        ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
        "LocalFanout overrides it: local delivery through Delivery.broadcast",
    ),
    Internal(
        "socketio.base_manager.BaseManager",
        "get_participants",
        ("namespace", "room"),
        "Delivery iterates (sid, eio_sid) pairs of a room",
    ),
    Internal("socketio.base_manager.BaseManager", "eio_sid_from_sid", ("sid", "namespace"), "Delivery.send_now"),
    Internal(
        "socketio.base_manager.BaseManager", "sid_from_eio_sid", ("eio_sid", "namespace"), "HubServer's connected hook"
    ),
    Internal("socketio.base_manager.BaseManager", "is_connected", ("sid", "namespace"), "HubServer's connected hook"),
    Internal(
        "socketio.base_manager.BaseManager",
        "basic_enter_room",
        ("sid", "namespace", "room", "eio_sid"),
        "HubRedisManager overrides it: a room's first local member subscribes its channel; SidRoomsManager "
        "records the sid's room (every membership change of python-socketio goes through it)",
    ),
    Internal(
        "socketio.base_manager.BaseManager",
        "basic_leave_room",
        ("sid", "namespace", "room"),
        "HubRedisManager overrides it: the room's key leaves `rooms` with its last member, and its channel is dropped; "
        "SidRoomsManager forgets the sid's room",
    ),
    Internal(
        "socketio.base_manager.BaseManager",
        "basic_disconnect",
        ("sid", "namespace", "**kwargs"),
        "SidRoomsManager overrides it: leaves the sid's own rooms (an index) instead of scanning every room, then "
        "drops `callbacks[sid]` and the sid from `pending_connect` / `pending_disconnect` as upstream does",
    ),
    Internal(
        "socketio.async_pubsub_manager.AsyncPubSubManager",
        "enter_room",
        ("sid", "namespace", "room", "eio_sid"),
        "HubRedisManager overrides it to wait for the room channel's subscription",
    ),
    Internal(
        "socketio.async_pubsub_manager.AsyncPubSubManager",
        "emit",
        ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
        "publishes {method, event, data, binary, namespace, room, skip_sid, callback, host_id} in that order",
    ),
    Internal(
        "socketio.async_redis_manager.AsyncRedisManager",
        "__init__",
        ("url", "channel", "write_only", "logger", "json", "redis_options"),
        "redis_manager()",
    ),
    Internal(
        "socketio.async_redis_manager.AsyncRedisManager",
        "_listen",
        (),
        "HubRedisManager wraps it to drop messages for rooms with no client here, before decoding",
    ),
    Internal(
        "socketio.async_redis_manager.AsyncRedisManager",
        "_publish",
        ("data",),
        "HubRedisManager wraps it to count publishes it gave up on (it returns None then)",
    ),
)

# Attributes set on instances (checked on real instances by the test): class -> names
INSTANCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "engineio.async_server.AsyncServer": (
        "_async", "sockets", "max_http_buffer_size", "ping_interval", "ping_timeout", "reason",
    ),
    "engineio.async_socket.AsyncSocket": (
        "server", "sid", "queue", "last_ping", "connected", "upgrading", "upgraded", "closing", "closed",
    ),
    "engineio.async_drivers.aiohttp.WebSocket": ("handler", "server", "_sock"),
    "engineio.packet.Packet": ("encode_cache", "binary", "data"),
    "socketio.async_server.AsyncServer": (
        "manager", "eio", "packet_class", "namespace_handlers", "manager_initialized", "namespaces",
    ),
    "socketio.base_manager.BaseManager": (
        "rooms", "server", "callbacks", "pending_connect", "pending_disconnect",
    ),
    "socketio.async_redis_manager.AsyncRedisManager": ("host_id", "channel", "redis", "thread"),
}  # fmt: skip


class InternalsChanged(RuntimeError):
    pass


def resolve(path: str) -> object:
    """A module or a class (or a class's attribute) from its dotted path."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(path)


def parameter_names(function: object) -> tuple[str, ...]:
    names = []
    for parameter in inspect.signature(function).parameters.values():  # type: ignore[arg-type]
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            names.append(f"*{parameter.name}")
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            names.append(f"**{parameter.name}")
        else:
            names.append(parameter.name)
    return tuple(names[1:] if names[:1] == ["self"] else names)


def problems() -> list[str]:
    """What no longer matches in the installed versions (empty when everything does)."""
    found = []
    for internal in INTERNALS:
        where = f"{internal.owner}.{internal.name}"
        try:
            target = getattr(resolve(internal.owner), internal.name)
        except (ImportError, AttributeError):
            found.append(f"{where}: missing ({internal.use})")
            continue
        if internal.parameters is not None:
            actual = parameter_names(target)
            if actual != internal.parameters:
                found.append(f"{where}: parameters {actual}, the hub expects {internal.parameters} ({internal.use})")
    return found


def verify() -> None:
    found = problems()
    if found:
        versions = ", ".join(f"{name} {metadata.version(name)}" for name in CHECKED_WITH)
        raise InternalsChanged(
            f"python-socketio/python-engineio internals the hub relies on changed ({versions}; checked with "
            f"{CHECKED_WITH}); see hub/realtime/internals.py:\n  " + "\n  ".join(found)
        )
