"""Clients leaving, in the Socket.IO manager alone: CPU of python-socketio's manager against the hub's.

    python -m bench.disconnect --clients 1000,3000,10000

Each client is what a hub dashboard connection is to the manager: in the namespace (the None room),
its own sid room, its `account:{id}` room and its market's room. All of them then leave, one
`basic_disconnect` each (what a mass disconnect ends in, whether the clients went away or a
draining instance disconnected them). python-socketio's scans every room of the namespace per
leaving sid (O(N²) in all); the hub's (hub/realtime/sid_rooms.py) leaves the sid's own rooms.
CPU from time.process_time; no I/O, no server.
"""

from __future__ import annotations

import argparse
import json
import time

import socketio

from hub.realtime.redis_manager import HubManager

NAMESPACE = "/dashboard"


def leave_all(manager: socketio.AsyncManager, clients: int, markets: int) -> float:
    """CPU seconds for `clients` dashboards to leave, one basic_disconnect each."""
    for i in range(clients):
        sid = f"sid{i}"
        manager.basic_enter_room(sid, NAMESPACE, None, eio_sid=f"eio{i}")
        manager.basic_enter_room(sid, NAMESPACE, sid, eio_sid=f"eio{i}")
        manager.basic_enter_room(sid, NAMESPACE, f"account:{i}")
        manager.basic_enter_room(sid, NAMESPACE, f"market:{i % markets}")
    started = time.process_time()
    for i in range(clients):
        manager.basic_disconnect(f"sid{i}", NAMESPACE)
    spent = time.process_time() - started
    assert not manager.rooms, "every room is gone with its last member"
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1000,3000,10000", help="comma-separated client counts")
    parser.add_argument("--markets", type=int, default=20)
    args = parser.parse_args()
    for clients in (int(n) for n in args.clients.split(",")):
        library = leave_all(socketio.AsyncManager(), clients, args.markets)
        hub = leave_all(HubManager(), clients, args.markets)
        print(json.dumps({
            "clients": clients,
            "python_socketio_cpu_s": round(library, 4),
            "hub_cpu_s": round(hub, 4),
            "python_socketio_us_per_client": round(1e6 * library / clients, 1),
            "hub_us_per_client": round(1e6 * hub / clients, 1),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
