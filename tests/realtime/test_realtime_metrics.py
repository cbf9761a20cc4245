"""The Socket.IO server's delivery counts what it delivers, and tells the stats pusher of every market's
order events, whether or not this instance has clients for them."""

from __future__ import annotations

from hub.metrics import HubMetrics
from hub.realtime.admission import HandshakeGate
from hub.realtime.redis_manager import HubManager
from hub.realtime.server import HubServer
from tests.helpers.api import metric_value

EVENT = {"stream": "market:m1", "seq": 1, "order": {}}


def _server() -> tuple[HubServer, HubMetrics, list[str]]:
    metrics, changed = HubMetrics(), []
    server = HubServer(
        max_queue_bytes=1 << 20, events_per_second=10, events_burst=10, client_manager=HubManager(),
        handshakes=HandshakeGate(limit=1, queue=1, max_wait=5), metrics=metrics, market_changed=changed.append,
    )  # fmt: skip
    return server, metrics, changed


def _delivered(metrics: HubMetrics) -> float:
    return metric_value(metrics.exposition().decode(), "hub_events_delivered_total", namespace="/dashboard")


def test_an_event_with_no_client_here_is_not_counted_as_delivered() -> None:
    server, metrics, changed = _server()
    assert server.delivery.broadcast("order:created", EVENT, "/dashboard", "market:m1", None)
    assert _delivered(metrics) == 0
    assert changed == ["m1"]  # the stats pusher still hears of it (it decides whether anyone watches)


async def test_an_event_going_to_clients_here_is_counted_once() -> None:
    server, metrics, changed = _server()
    for eio_sid in ("eio1", "eio2"):
        sid = await server.manager.connect(eio_sid, "/dashboard")
        await server.manager.enter_room(sid, "/dashboard", "market:m1")
    assert server.delivery.broadcast("order:updated", EVENT, "/dashboard", "market:m1", None)
    assert _delivered(metrics) == 1
    # Not an order event of a market: no stats, and a stats push is no stream event to count.
    server.delivery.broadcast("stats", {"orders": 1}, "/dashboard", "market:m1", None)
    assert changed == ["m1"]
    assert _delivered(metrics) == 1
