"""Graceful shutdown of a `python -m hub` process on SIGTERM (hub/serving.py).

Socket.IO clients being disconnected on SIGTERM and catching up on another instance is tested
through nginx in tests/system/test_topology.py."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
from aiohttp import ClientSession

from tests.helpers.api import PASSWORD, unique_email
from tests.helpers.processes import HubFleet, hubs  # noqa: F401 - the fixture


async def open_slow_login(
    port: int, email: str, password: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Start a sign-in whose body has not been sent yet; return once the hub is handling it.

    `Expect: 100-continue` makes the hub say "100 Continue" when it has started handling the
    request, so the test knows the request is in flight without sleeping.
    """
    body = orjson.dumps({"email": email, "password": password})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/v1/users/login HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    assert status_line.startswith(b"HTTP/1.1 100"), status_line
    assert await asyncio.wait_for(reader.readline(), 10) == b"\r\n"
    return reader, writer, body


async def refused(port: int, *, timeout: float = 10) -> bool:
    """True once a new connection to the port is refused (polled: refusal is not an event we can await)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            # Caught in the listener's accept queue as it closed: the kernel resets it. Try again.
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await asyncio.sleep(0.05)
    return False


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return status, headers, body


async def test_sigterm_lets_the_request_in_flight_finish(hubs: HubFleet, db_name: str) -> None:  # noqa: F811
    hub = hubs.start(db_name=db_name)
    assert hub.process is not None
    email = unique_email()
    async with ClientSession() as http:
        body = {"email": email, "name": "Slow", "password": PASSWORD, "confirm_password": PASSWORD}
        async with http.post(f"{hub.url}/api/v1/users/register", json=body) as response:
            assert response.status == 201, await response.text()

    reader, writer, body_bytes = await open_slow_login(hub.port, email, PASSWORD)
    hub.process.send_signal(signal.SIGTERM)
    # The listening socket is closed at once: new connections are refused (nginx tries the next instance).
    assert await refused(hub.port)
    assert hub.process.poll() is None  # still serving the request in flight

    writer.write(body_bytes)  # the rest of the request arrives after SIGTERM
    await writer.drain()
    status, headers, reply = await read_response(reader)
    assert status == 200, reply
    assert orjson.loads(reply)["user"]["email"] == email
    assert headers.get("connection", "").lower() == "close"
    writer.close()

    assert await asyncio.to_thread(hub.process.wait, 15) == 0


async def test_shutdown_is_bounded_by_the_timeout(hubs: HubFleet, db_name: str) -> None:  # noqa: F811
    hub = hubs.start(db_name=db_name, shutdown_timeout_seconds="1")
    assert hub.process is not None
    reader, writer, _ = await open_slow_login(hub.port, unique_email(), "never sent")
    started = time.monotonic()
    hub.process.send_signal(signal.SIGTERM)
    # The body never comes: the hub gives up on it after SHUTDOWN_TIMEOUT_SECONDS and exits.
    assert await asyncio.to_thread(hub.process.wait, 15) == 0
    assert time.monotonic() - started < 8
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the connection was closed
    writer.close()
