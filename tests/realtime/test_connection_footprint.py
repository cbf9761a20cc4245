"""What an idle WebSocket session holds (memory per connection, bench/README.md): counts, not bytes
(bytes are measured by `python -m bench.memory`). Its request task waits in the reader, not at the
bottom of engineio's connect calls; no finished writer task is kept; its next ping waits in the
engine's shared timers."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from hub.keys import socketio_key

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
