"""The docker-compose topology without Docker: nginx (deploy/nginx.conf rendered for loopback) in front
of two `python -m hub` processes, nx-27017 and Redis. REST and Socket.IO go through nginx; one hub is
stopped with SIGTERM while a dashboard is connected, and the dashboard catches up on the other."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from deploy.render_nginx_local import render
from store.embedded import free_port
from tests.helpers.api import read_metric
from tests.helpers.nx import wait_for_port
from tests.helpers.processes import HubFleet, HubProcess, hubs  # noqa: F401 - the fixture
from tests.helpers.socket_clients import LiveClient, open_shop

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/0"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def nginx_for(tmp_path: Path) -> Iterator[Any]:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (Debian's nginx package; .ci/run installs it)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(upstream_ports: list[int]) -> str:
        workdir = tmp_path / "nginx"
        port = free_port()
        config = render(upstream_ports, port, workdir)
        log = (workdir / "stderr.log").open("ab")
        process = subprocess.Popen(
            [NGINX, "-c", str(config), "-p", str(workdir), "-e", str(workdir / "error.log")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(process)
        wait_for_port(port, process=process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


class Url:
    """An aiohttp session bound to one base URL, shaped like the test client the helpers expect."""

    def __init__(self, session: ClientSession, base: str) -> None:
        self.session, self.base = session, base

    def __getattr__(self, method: str) -> Any:
        request = getattr(self.session, method)

        def call(path: str, **kwargs: Any) -> Any:
            return request(self.base + path, **kwargs)

        return call


async def serving_dashboard(instances: list[HubProcess], session: ClientSession) -> HubProcess:
    for hub in instances:
        if await read_metric(Url(session, hub.url), "hub_socketio_connections", namespace="/dashboard") == 1:
            return hub
    raise AssertionError("no instance has the dashboard connection")


async def test_nginx_two_hubs_redis_and_a_dashboard_that_survives_a_sigterm(
    hubs: HubFleet,  # noqa: F811
    nginx_for: Any,
    db_name: str,
) -> None:
    shared = {
        "redis_url": REDIS_URL,
        "redis_channel": f"test-topology-{uuid.uuid4().hex[:12]}",
        "rate_limit_key_prefix": f"test-topology-{uuid.uuid4().hex[:12]}",
        "trusted_proxy_count": "1",
        "rate_limit_per_minute": "100000",
        "rate_limit_per_hour": "1000000",
        "shutdown_timeout_seconds": "5",
    }
    instances = [hubs.start(db_name=db_name, **shared) for _ in range(2)]
    edge = nginx_for([hub.port for hub in instances])

    async with ClientSession() as session:
        through_nginx = Url(session, edge)
        response = await through_nginx.get("/health")
        assert response.status == 200
        assert response.headers["X-Request-ID"]
        # /metrics is for Prometheus on the internal network: not through the edge, in any spelling.
        for path in ("/metrics", "/metrics?x=1", "//metrics", "/%6Detrics", "/./metrics"):
            response = await through_nginx.get(path)
            assert response.status == 404, path
            assert "hub_" not in await response.text(), path
        assert (await session.get(f"{instances[0].url}/metrics")).status == 200
        shop = await open_shop(through_nginx, customers=1)
        customer = shop.customers[0]

        # Polling first, then the WebSocket upgrade: both legs must reach the same instance (ip_hash).
        auth = {"token": shop.admin.token, "market_id": shop.market_id}
        dashboard = LiveClient(edge, "/dashboard", auth, transports=("polling", "websocket"))
        await dashboard.connect()
        try:
            first = await shop.place_order(customer)  # through nginx
            # And directly on each instance: one of them is not the dashboard's, so the event crosses Redis.
            for hub in instances:
                await shop.place_order(customer, http=Url(session, hub.url))
            await dashboard.wait(lambda: len(dashboard.events()) == 3)
            stream = f"market:{shop.market_id}"
            seqs = dashboard.seqs(stream)
            assert seqs == list(range(seqs[0], seqs[0] + 3))
            assert first["id"] in dashboard.order_ids()

            # SIGTERM the instance holding the dashboard: it is disconnected at once, not after the timeout.
            doomed = await serving_dashboard(instances, session)
            survivor = next(hub for hub in instances if hub is not doomed)
            assert doomed.process is not None
            process = doomed.process
            process.terminate()
            await asyncio.wait_for(dashboard.disconnected.wait(), 10)

            # While it reconnects, an order is placed through nginx (which now only has the survivor).
            missed = await shop.place_order(customer)
            assert await asyncio.to_thread(process.wait, 15) == 0
        finally:
            await dashboard.close()

        # Reconnect through nginx with the last seq seen: the missed event comes first, nothing twice.
        since = {stream: seqs[-1]}
        again = LiveClient(edge, "/dashboard", {**auth, "since": since}, transports=("polling", "websocket"))
        await again.connect()
        try:
            await again.wait(lambda: missed["id"] in again.order_ids())
            assert again.seqs(stream)[0] == seqs[-1] + 1
            assert len(again.seqs(stream)) == len(set(again.seqs(stream)))
            assert await serving_dashboard([survivor], session) is survivor
            live = await shop.place_order(customer)  # delivered live to the dashboard, on the survivor
            await again.wait(lambda: live["id"] in again.order_ids())
        finally:
            await again.close()

        survivor_metrics = Url(session, survivor.url)
        # The survivor made three of the orders (the one placed on it directly, the missed one, the last one):
        # it published all three. It delivered one: the first two were emitted while it had no dashboard
        # (the missed one reached the dashboard by replay), and what had no client here is not counted.
        assert await read_metric(survivor_metrics, "hub_events_published_total", event="order:created") >= 3
        assert await read_metric(survivor_metrics, "hub_events_delivered_total", namespace="/dashboard") == 1
        assert await read_metric(survivor_metrics, "hub_event_replays_total", namespace="/dashboard") >= 1
