"""Reconnect storm, small enough for CI: a few hundred dashboards on instance B; B is stopped (SIGTERM,
then in another run SIGKILL) while orders keep coming on A; every client reconnects to A with the JS
client's randomized backoff and `since`, and ends with every event of its market exactly once. A admits
a bounded number of handshakes at once: with a small bound and queue some clients are told `busy`
and come back later. The 3,000-client run with figures is `python -m bench.storm` (bench/README.md)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import aiohttp
import pytest

from bench.loadgen import ClientSpec, Recorder, SioClient
from bench.storm import Backoff, StormClient, exactly_once_problems, place_orders
from hub.app import create_app
from hub.keys import accounts_key, socketio_key
from hub.realtime.admission import HandshakeGate
from tests.helpers.api import metric_value, read_metric
from tests.helpers.processes import HubFleet, hubs  # noqa: F401 - the fixture
from tests.helpers.socket_clients import dashboard_auth, open_shop

SHARED_REDIS = "redis://127.0.0.1:6379/0"
LIMITS = {"rate_limit_per_minute": "1000000", "rate_limit_per_hour": "10000000"}
CLIENTS_ON_B = 200
CLIENTS_ON_A = 10
MARKETS = 2

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop_signal", ["TERM", "KILL"])
async def test_every_client_of_a_stopped_instance_catches_up_on_the_other_exactly_once(
    hubs: HubFleet,  # noqa: F811 - the fixture
    db_name: str,
    stop_signal: str,
) -> None:
    channel = f"test-{uuid.uuid4().hex[:12]}"
    admission = {"socket_handshake_concurrency": "4", "socket_handshake_queue": "20"}
    a, b = await asyncio.gather(
        asyncio.to_thread(hubs.start, db_name=db_name, redis_url=SHARED_REDIS, redis_channel=channel,
                          **LIMITS, **admission),
        asyncio.to_thread(hubs.start, db_name=db_name, redis_url=SHARED_REDIS, redis_channel=channel, **LIMITS),
    )  # fmt: skip
    async with aiohttp.ClientSession(base_url=a.url) as http:
        shops = [await open_shop(http) for _ in range(MARKETS)]
        by_market = {shop.market_id: shop for shop in shops}
        rng, backoff = random.Random(7), Backoff()
        recorder = Recorder()

        def client(index: int, first: str) -> StormClient:
            shop = shops[index % MARKETS]
            auth = dashboard_auth(shop.admin, shop.market_id)
            return StormClient(index, first, a.url, "/dashboard", auth, recorder, backoff, rng)

        on_b = [client(i, b.url) for i in range(CLIENTS_ON_B)]
        on_a = [client(i, a.url) for i in range(CLIENTS_ON_A)]
        stop_clients, stop_orders = asyncio.Event(), asyncio.Event()
        orders: asyncio.Task[None] | None = None
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as sockets:
            tasks = [asyncio.create_task(c.run(sockets, stop_clients)) for c in [*on_a, *on_b]]
            try:
                await _all_connected([*on_a, *on_b], 60)
                assert {c.connected_to for c in on_b} == {b.url}

                async def emit(market_id: str) -> tuple[str, float, bool]:
                    order = await by_market[market_id].place_order(by_market[market_id].customers[0])
                    return str(order["id"]), time.time(), True

                sent_at: dict[str, float] = {}
                counts: dict[str, int] = {}
                orders = asyncio.create_task(
                    place_orders(emit, list(by_market), 20, stop=stop_orders, sent_at=sent_at, counts=counts)
                )
                await _until(lambda: sum(counts.values()) >= 10, 30)
                await asyncio.to_thread(b.stop if stop_signal == "TERM" else lambda: _kill(b))
                await _until(lambda: all(c.connected_to == a.url for c in on_b), 60)
                settled = sum(counts.values())
                await _until(lambda: sum(counts.values()) >= settled + 10, 30)  # orders after the storm too
                stop_orders.set()
                await orders

                expected = {f"market:{market_id}": n for market_id, n in counts.items()}
                await _until(lambda: not exactly_once_problems([*on_a, *on_b], expected), 30, fail=False)
                assert exactly_once_problems([*on_a, *on_b], expected) == []
                assert recorder.duplicates == 0
                assert all(c.back_after_s for c in on_b)  # every client of B came back, to A
                exposition = await (await http.get("/metrics")).text()
                assert metric_value(exposition, "hub_socketio_handshakes_refused_total") > 0  # told `busy`
                assert sum(c.busy_refusals for c in on_b) > 0
            finally:
                stop_orders.set()
                if orders is not None:
                    await asyncio.gather(orders, return_exceptions=True)
                stop_clients.set()
                await asyncio.gather(*tasks, return_exceptions=True)


def _kill(hub: Any) -> None:
    hub.process.kill()
    hub.process.wait(10)


async def _all_connected(clients: list[StormClient], timeout: float) -> None:
    await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), timeout)


async def _until(predicate: Any, timeout: float, *, fail: bool = True) -> None:
    """Polls a condition the clients' own tasks change (no single event to await); bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            assert not fail, "condition not reached in time"
            return
        await asyncio.sleep(0.05)


def _handshakes(gate: HandshakeGate) -> tuple[Any, list[bool], asyncio.Event]:
    """A handshake through `gate` (held until `release`), and the outcomes of the admissions."""
    release = asyncio.Event()
    outcomes: list[bool] = []

    async def handshake() -> None:
        async with gate.admit() as admitted:
            outcomes.append(admitted)
            if admitted:
                await release.wait()

    return handshake, outcomes, release


async def test_the_handshake_gate_runs_a_bounded_number_and_refuses_past_its_queue() -> None:
    gate = HandshakeGate(limit=2, queue=2, max_wait=60)
    handshake, outcomes, release = _handshakes(gate)

    tasks = [asyncio.create_task(handshake()) for _ in range(5)]
    # The first two run at once; the third and fourth wait for a slot; with two waiting, the fifth is refused.
    await _until(lambda: len(outcomes) == 3, 5)
    assert (gate.running, gate.waiting, gate.refused) == (2, 2, 1)
    assert outcomes == [True, True, False]
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert outcomes.count(True) == 4 and gate.admitted == 4 and gate.running == 0 and gate.waiting == 0


async def test_a_handshake_that_waited_its_longest_is_refused_and_the_queue_moves_on() -> None:
    gate = HandshakeGate(limit=1, queue=10, max_wait=0.05)
    handshake, outcomes, release = _handshakes(gate)

    running = asyncio.create_task(handshake())
    await _until(lambda: outcomes == [True], 5)
    await asyncio.wait_for(handshake(), 5)  # waits for the held slot, then gives up
    assert outcomes == [True, False] and (gate.refused, gate.waiting) == (1, 0)
    release.set()
    await asyncio.wait_for(running, 5)
    await asyncio.wait_for(handshake(), 5)  # a free slot: admitted at once
    assert outcomes == [True, False, True] and gate.admitted == 2 and gate.running == 0


async def test_a_handshake_waiting_for_admission_leaves_the_queue_when_its_client_leaves(
    aiohttp_client: Any, make_settings: Any
) -> None:
    """Clients in a storm give up on a slow handshake and try again; the attempt they abandoned must not
    stay queued (nor run later for nobody). It does not, because python-socketio handles CONNECT inline
    in the WebSocket's reader, which ends with the connection: a guard on that, which admission relies on."""
    app = create_app(make_settings(socket_handshake_concurrency=1))
    http = await aiohttp_client(app)
    shop = await open_shop(http)
    server = app[socketio_key]
    gate = server.handshakes
    url = str(http.make_url("")).rstrip("/")
    leaver = SioClient(ClientSpec(url, 0, dashboard_auth(shop.admin, shop.market_id)), "/dashboard", Recorder())
    async with aiohttp.ClientSession() as sockets, gate.admit():  # the one slot is taken
        connecting = asyncio.create_task(leaver.connect(sockets, 10, False))
        await _until(lambda: gate.waiting == 1, 10)
        connecting.cancel()
        await leaver.close()
        await _until(lambda: gate.waiting == 0, 10)
    assert gate.admitted == 1  # the test's own, not the abandoned handshake
    assert not server.eio.sockets
    assert list(server.manager.get_participants("/dashboard", None)) == []


@pytest.mark.parametrize("ends", ["while_it_waits_for_admission", "during_the_handshake"])
async def test_a_handshake_whose_session_the_server_ends_leaves_nothing_behind(
    aiohttp_client: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch, ends: str
) -> None:
    """The handshake runs in the session's reader, so while it waits no pong is read and the server may
    end the session (its pong deadline) with the handshake still pending. Seen in storms: the handshake
    then ran anyway and its connection stayed in the rooms (counted, delivered to) with no session."""
    app = create_app(make_settings(socket_handshake_concurrency=1))
    http = await aiohttp_client(app)
    shop = await open_shop(http)
    server = app[socketio_key]
    gate = server.handshakes
    in_handshake, resume = asyncio.Event(), asyncio.Event()
    accounts = app[accounts_key]
    authenticate = accounts.authenticate_until

    async def slow_authenticate(token: str | None) -> Any:
        in_handshake.set()
        await resume.wait()
        return await authenticate(token)

    monkeypatch.setattr(accounts, "authenticate_until", slow_authenticate)
    url = str(http.make_url("")).rstrip("/")
    client = SioClient(ClientSpec(url, 0, dashboard_auth(shop.admin, shop.market_id)), "/dashboard", Recorder())
    async with aiohttp.ClientSession() as sockets:
        connecting = asyncio.create_task(client.connect(sockets, 10, False))
        try:
            if ends == "while_it_waits_for_admission":
                async with gate.admit():  # the one slot is taken
                    await _until(lambda: gate.waiting == 1, 10)
                    (eio_sid,) = server.eio.sockets
                    await server.eio.disconnect(eio_sid)
                resume.set()
            else:
                await asyncio.wait_for(in_handshake.wait(), 10)
                (eio_sid,) = server.eio.sockets
                await server.eio.disconnect(eio_sid)
                resume.set()
            await _until(lambda: gate.running == 0 and gate.waiting == 0, 10)
        finally:
            connecting.cancel()
            await client.close()
    assert list(server.manager.get_participants("/dashboard", None)) == []
    assert await read_metric(http, "hub_socketio_connections", namespace="/dashboard") == 0
    assert not server.delivery.holds
