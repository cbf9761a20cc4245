"""What an idle WebSocket session holds (memory per connection, bench/README.md): counts, not bytes
(bytes are measured by `python -m bench.memory`). Its request task waits in the reader, not at the
bottom of engineio's connect calls; no finished writer task is kept; its next ping and its token's
expiry wait in timers shared per second, not in event-loop timers of its own; its session keeps the
user's id and role, not the User model. Raw Engine.IO /
Socket.IO over aiohttp's WebSocket client (python-socketio's client would add timers of its own)."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from hub.keys import socketio_key
from store.models import User
from tests.helpers.api import sign_up

CONNECTIONS = 20

# engineio's calls that led to the WebSocket: returned before the connection's life starts.
CONNECT_CALLS = {"AsyncServer._handle_connect", "AsyncSocket.handle_get_request", "AsyncSocket._upgrade_websocket",
                 "TrackedWebSocket.__call__", "WebSocket.__call__"}  # fmt: skip


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """The qualified names of the coroutines a task is suspended in, outermost first."""
    chain = []
    awaited: Any = task.get_coro()
    while awaited is not None and hasattr(awaited, "cr_code"):
        chain.append(awaited.cr_code.co_qualname)
        awaited = awaited.cr_await
    return chain


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.02)


async def test_an_idle_websocket_session_waits_in_its_reader_only(client: TestClient) -> None:
    engine = client.app[socketio_key].eio
    ws = await client.ws_connect("/socket.io/?EIO=4&transport=websocket")
    assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith("0{")  # Engine.IO OPEN
    (socket,) = engine.sockets.values()
    await asyncio.wait_for(_until(lambda: socket.queue.empty() and socket.hub_writer is None), 5)

    chains = [await_chain(task) for task in asyncio.all_tasks()]
    (chain,) = [chain for chain in chains if "HubEngineServer.handle_request" in chain]
    assert CONNECT_CALLS.isdisjoint(chain), chain
    assert chain[chain.index("HubEngineServer.handle_request") + 1 :][:2] == [
        "LeanSocket._websocket_handler",
        "WebSocketResponse.receive",
    ], chain
    assert len(engine.timers) == 1  # its next ping, in the shared per-second timers
    await ws.close()
    await asyncio.wait_for(_until(lambda: not engine.sockets), 5)


def loop_timers() -> int:
    """Pending event-loop timers (asyncio's or uvloop's; a cancelled one can linger in the loop's heap)."""
    handles = [obj for obj in gc.get_objects() if type(obj).__name__ == "TimerHandle"]
    return sum(not handle.cancelled() for handle in handles)


def users_alive() -> int:
    return sum(type(obj) is User for obj in gc.get_objects())


async def test_signed_in_connections_hold_no_timer_and_no_user_model_of_their_own(client: TestClient) -> None:
    customer = await sign_up(client)
    url = client.make_url("/socket.io/?EIO=4&transport=websocket")
    # No total timeout: the client side would hold a timer per connection otherwise.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        before, users_before = loop_timers(), users_alive()
        sockets = []
        for _ in range(CONNECTIONS):
            ws = await http.ws_connect(url)
            assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith("0{")
            await ws.send_str("40/orders," + json.dumps({"token": customer.token}))
            assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith("40/orders,{")  # connected
            sockets.append(ws)
        # Each has a ping and a token expiry pending; they share a timer per second, and the
        # connections opened within a few seconds.
        assert loop_timers() - before < CONNECTIONS // 2
        # What they keep of their user is a ConnectedUser (id, role), not the stored User model.
        assert users_alive() - users_before < CONNECTIONS // 2
        for ws in sockets:
            await ws.close()
