"""Engine.IO pings on a WebSocket session (hub/realtime/engineio_server.py): a client that answers them
stays; one that stops answering, or that ignores the server's CLOSE, is dropped within a ping interval
and a ping timeout (plus a second: the deadlines share one timer per second). Raw Engine.IO over
aiohttp's WebSocket client, so the test decides when to answer. The engine's intervals are shortened
to a second here (the defaults are 25 s and 20 s)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.keys import socketio_key

INTERVAL = 1.0
TIMEOUT = 1.0
# Until a silent peer must be gone: its next ping, the pong deadline, the timers' second, and slack.
DROPPED_WITHIN = INTERVAL + TIMEOUT + 1 + 4


def short_pings(client: TestClient, *, interval: float = INTERVAL, timeout: float = TIMEOUT) -> Any:
    engine = client.app[socketio_key].eio
    engine.ping_interval = interval
    engine.ping_timeout = timeout
    return engine


async def open_session(client: TestClient) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/socket.io/?EIO=4&transport=websocket", autoclose=False)
    opening = await asyncio.wait_for(ws.receive_str(), 5)
    assert opening.startswith("0{")  # Engine.IO OPEN
    return ws


async def until_closed(ws: aiohttp.ClientWebSocketResponse, *, answer_pings: bool) -> list[str]:
    """Read until the server ends the connection; what it sent, in order."""
    received = []
    while True:
        message = await ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            return received
        received.append(message.data)
        if message.data == "2" and answer_pings:
            await ws.send_str("3")


@pytest.mark.parametrize(
    ("timeout", "pong_delay"),
    [
        (TIMEOUT, 0.0),
        # A slow client: each pong comes 1.5 s after its ping, so a ping's deadline (3.5 s) falls while
        # the next ping is still unanswered; that one has a deadline of its own.
        (3.5, 1.5),
    ],
)
async def test_a_client_that_answers_pings_stays_connected(
    client: TestClient, timeout: float, pong_delay: float
) -> None:
    engine = short_pings(client, timeout=timeout)
    ws = await open_session(client)
    pings = 0
    deadline = time.monotonic() + 4 * (INTERVAL + 1 + pong_delay) + 10
    while pings < 4:
        data = await asyncio.wait_for(ws.receive_str(), deadline - time.monotonic())
        if data == "2":
            pings += 1
            await asyncio.sleep(pong_delay)
            await ws.send_str("3")
    assert not ws.closed and len(engine.sockets) == 1
    await ws.close()


async def test_a_client_that_stops_answering_pings_is_dropped(client: TestClient) -> None:
    engine = short_pings(client)
    ws = await open_session(client)
    started = time.monotonic()
    received = await asyncio.wait_for(until_closed(ws, answer_pings=False), DROPPED_WITHIN + INTERVAL)
    assert received.count("2") == 1  # one ping, unanswered, then the end
    assert time.monotonic() - started >= INTERVAL + TIMEOUT - 0.1
    await asyncio.wait_for(_until(lambda: not engine.sockets), 5)  # the server forgot the session


async def test_a_client_that_ignores_the_servers_close_is_dropped(client: TestClient) -> None:
    engine = short_pings(client)
    ws = await open_session(client)
    (sid,) = engine.sockets
    await engine.disconnect(sid)
    received = await asyncio.wait_for(until_closed(ws, answer_pings=True), DROPPED_WITHIN)
    assert received[-1:] == ["1"]  # Engine.IO CLOSE: the client was told, and kept its WebSocket open
    assert ws.closed or (await ws.receive()).type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.05)
