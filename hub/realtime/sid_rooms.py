"""Which rooms each connection is in, so that a disconnect leaves just those.

python-socketio keeps `rooms[namespace][room] = {sid: eio_sid}` and nothing per connection: its
`BaseManager.basic_disconnect` copies and scans every room of the namespace to find the leaving sid's.
Every hub connection has a room of its own (its sid) and one per account (`account:{id}`), so the
namespace has about two rooms per client and N clients leaving cost O(N²) look-ups: 69 % of the hub's
Python time when 3,000 clients left at once (bench/README.md). This manager keeps the reverse index
(sid -> its rooms) beside `rooms`, updated wherever python-socketio changes membership (every change
goes through `basic_enter_room` / `basic_leave_room`), and leaves only those rooms on disconnect.

Every python-socketio private name used here is listed in hub/realtime/internals.py.
"""

from __future__ import annotations

from typing import Any

import socketio


class SidRoomsManager(socketio.AsyncManager):
    """`basic_disconnect` in O(the sid's rooms) instead of O(the namespace's rooms); otherwise the
    same as python-socketio's (the rooms left through `basic_leave_room`, then its callbacks and its
    pending connect / disconnect marks dropped)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # a base of managers whose arguments differ
        super().__init__(*args, **kwargs)
        # namespace -> sid -> the rooms it is in (None: the namespace; its own sid; named rooms).
        # A short list per connection (~4 rooms, ~0.15 KB), in the order entered.
        self._rooms_of: dict[str, dict[str, list[Any]]] = {}

    def rooms_of(self, sid: str, namespace: str) -> list[Any]:
        """The rooms `sid` is in (None included), without scanning the namespace's rooms."""
        return list(self._rooms_of.get(namespace, {}).get(sid, ()))

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # raises before any change
        rooms = self._rooms_of.setdefault(namespace, {}).setdefault(sid, [])
        if room not in rooms:
            rooms.append(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        members = self._rooms_of.get(namespace, {})
        rooms = members.get(sid)
        if rooms is None or room not in rooms:
            return
        rooms.remove(room)
        if not rooms:
            del members[sid]
            if not members:
                del self._rooms_of[namespace]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # python-socketio 5.18's body, with the scan of every room replaced by the index.
        if namespace not in self.rooms:
            return
        for room in self.rooms_of(sid, namespace):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]
