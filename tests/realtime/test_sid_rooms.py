"""A disconnect leaves only the connection's own rooms (hub/realtime/sid_rooms.py), with python-socketio's
semantics: counted on the rooms it touches, and compared with the library's own manager step by step."""

from __future__ import annotations

from typing import Any

import socketio
from bidict import bidict
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.realtime.redis_manager import HubManager

NAMESPACE = "/dashboard"


class WatchedRoom(bidict[str, str]):
    """A room that records being looked at (membership test, read, delete, size, iteration)."""

    def __init__(self, name: Any, members: bidict[str, str], touched: set[Any]) -> None:
        self.name = name
        self.touched: set[Any] = set()  # not recorded while the members are copied in
        super().__init__(members)
        self.touched = touched

    def _touch(self) -> None:
        self.touched.add(self.name)

    def __contains__(self, key: object) -> bool:
        self._touch()
        return super().__contains__(key)

    def __getitem__(self, key: str) -> str:
        self._touch()
        return super().__getitem__(key)

    def __delitem__(self, key: str) -> None:
        self._touch()
        super().__delitem__(key)

    def __len__(self) -> int:
        self._touch()
        return super().__len__()

    def __iter__(self) -> Any:
        self._touch()
        return super().__iter__()


def connect(manager: socketio.AsyncManager, sid: str, namespace: str = NAMESPACE) -> None:
    """What pre_connect does, without a server to make the sid."""
    manager.basic_enter_room(sid, namespace, None, eio_sid=f"eio-{sid}")
    manager.basic_enter_room(sid, namespace, sid, eio_sid=f"eio-{sid}")


def test_a_disconnect_touches_only_the_rooms_of_the_leaving_sid() -> None:
    """With a room per account, python-socketio's scan looks into every room of the namespace
    (O(clients) per disconnect, O(clients²) when they all leave); the hub's looks into four."""
    manager = HubManager()
    clients = [f"sid{i}" for i in range(300)]
    for sid in clients:
        connect(manager, sid)
        manager.basic_enter_room(sid, NAMESPACE, f"account:{sid}")
        manager.basic_enter_room(sid, NAMESPACE, "market:1")
    touched: set[Any] = set()
    rooms = manager.rooms[NAMESPACE]
    for name in list(rooms):
        rooms[name] = WatchedRoom(name, rooms[name], touched)

    manager.basic_disconnect("sid7", NAMESPACE)

    assert touched == {None, "sid7", "account:sid7", "market:1"}
    assert "sid7" not in manager.rooms[NAMESPACE] and "account:sid7" not in manager.rooms[NAMESPACE]
    assert len(manager.rooms[NAMESPACE]) == 1 + 2 * 299 + 1  # None, the others' two rooms each, the market
    assert dict(manager.rooms[NAMESPACE]["market:1"]) == {sid: f"eio-{sid}" for sid in clients if sid != "sid7"}
    assert manager.rooms_of("sid7", NAMESPACE) == []


def _state(manager: socketio.AsyncManager) -> tuple[Any, ...]:
    rooms = {ns: {room: dict(members) for room, members in by_room.items()} for ns, by_room in manager.rooms.items()}
    return rooms, dict(manager.callbacks), dict(manager.pending_connect), dict(manager.pending_disconnect)


SIDS = ("a", "b", "c", "d")
NAMESPACES = ("/dashboard", "/orders")
ROOMS = ("market:1", "account:a", "account:b", "b")  # "b" is also a sid: entering it must fail the same way
operations = st.lists(
    st.tuples(
        st.sampled_from(("connect", "enter", "leave", "close", "disconnect", "pending", "callback")),
        st.sampled_from(SIDS),
        st.sampled_from(NAMESPACES),
        st.sampled_from(ROOMS),
    ),
    max_size=40,
)


def _apply(manager: socketio.AsyncManager, operation: tuple[str, str, str, str]) -> str | None:
    """The operation's outcome: None, or the name of the error python-socketio raised."""
    kind, sid, namespace, room = operation
    try:
        if kind == "connect":
            connect(manager, sid, namespace)
        elif kind == "enter":
            manager.basic_enter_room(sid, namespace, room)
        elif kind == "leave":
            manager.basic_leave_room(sid, namespace, room)
        elif kind == "close":
            manager.basic_close_room(room, namespace)
        elif kind == "disconnect":
            manager.basic_disconnect(sid, namespace)
        elif kind == "pending":  # what pre_connect and pre_disconnect leave for basic_disconnect to clear
            manager.pending_connect.setdefault(namespace, []).append(sid)
            manager.pending_disconnect.setdefault(namespace, []).append(sid)
        else:
            manager.callbacks.setdefault(sid, {})[1] = print
    except Exception as exc:  # compared with what the library raised
        return type(exc).__name__
    return None


@settings(max_examples=300, deadline=None)
@given(operations)
def test_rooms_callbacks_and_pending_marks_match_python_socketio_after_every_step(
    steps: list[tuple[str, str, str, str]],
) -> None:
    library, hub = socketio.AsyncManager(), HubManager()
    for step in steps:
        assert _apply(hub, step) == _apply(library, step), step
        assert _state(hub) == _state(library), step
        for namespace, by_room in library.rooms.items():
            for sid in SIDS:
                scanned = {room for room, members in by_room.items() if sid in members}
                assert set(hub.rooms_of(sid, namespace)) == scanned, (step, sid, namespace)
