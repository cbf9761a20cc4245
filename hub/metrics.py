"""Prometheus metrics of one hub application.

Every app owns its own CollectorRegistry (not prometheus-client's global one), so tests can build
many apps in one process and each /metrics shows only its own figures. Other modules receive the
HubMetrics object from the app factory and move its counters; they never import a global.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
WEBHOOK_LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 6 * 3600.0, 24 * 3600.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HubMetrics:
    """The hub's counters, gauges and histograms, registered in a registry of their own.

    Labels are low-cardinality on purpose: route templates (never raw paths), namespaces,
    event names and limit scopes.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._published: dict[str, Counter] = {}
        self.http_requests = Counter(
            "hub_http_requests", "HTTP requests answered, by route template and status", ["method", "route", "status"],
            registry=r,
        )  # fmt: skip
        self.http_latency = Histogram(
            "hub_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.socket_connections = Gauge(
            "hub_socketio_connections", "Open Socket.IO connections, by namespace", ["namespace"], registry=r
        )
        self.events_published = Counter(
            "hub_events_published", "Events published (written to history and fanned out)", ["event"], registry=r
        )
        self.events_delivered = Counter(
            "hub_events_delivered", "Events emitted to connected clients of this instance", ["namespace"], registry=r
        )
        self.events_publish_failed = Counter(
            "hub_events_publish_failed", "Events that could not be published", ["event"], registry=r
        )
        self.replays = Counter(
            "hub_event_replays", "Replays of missed events (on reconnect or on request)", ["namespace"], registry=r
        )
        self.resyncs = Counter(
            "hub_event_resyncs", "Replays older than the history: the client was told to resync", ["namespace"],
            registry=r,
        )  # fmt: skip
        self.slow_client_disconnects = Counter(
            "hub_slow_client_disconnects", "Socket.IO clients disconnected for not keeping up", ["namespace"],
            registry=r,
        )  # fmt: skip
        self.rate_limited = Counter(
            "hub_rate_limited_requests", "Requests refused with 429, by the limit that refused them", ["scope"],
            registry=r,
        )  # fmt: skip
        self.rate_limit_storage_errors = Counter(
            "hub_rate_limit_storage_errors", "Rate limit checks skipped because the storage (Redis) failed",
            registry=r,
        )  # fmt: skip
        self.database_errors = Counter(
            "hub_database_errors", "Requests answered 503 because the database did not answer", registry=r
        )
        self.webhook_deliveries = Counter(
            "hub_webhook_deliveries", "Webhook delivery attempts by outcome (delivered, retry, failed)", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.webhook_attempts = Counter("hub_webhook_attempts", "Webhook POSTs made (every attempt)", registry=r)
        self.webhook_lag = Histogram(
            "hub_webhook_lag_seconds", "From an order event to its webhook delivery (2xx)", buckets=WEBHOOK_LAG_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.email_failures = Counter("hub_email_failures", "Emails that could not be sent", registry=r)
        self.socket_handshakes_refused = Counter(
            "hub_socketio_handshakes_refused",
            "Socket.IO handshakes refused with `busy` (admission queue full, or waited past the bound)",
            registry=r,
        )  # fmt: skip
        self.socket_handshakes_waiting = Gauge(
            "hub_socketio_handshakes_waiting", "Socket.IO handshakes waiting for admission", registry=r
        )
        self.redis_shared_messages = Counter(
            "hub_redis_shared_channel_messages", "Messages this instance received on the shared Redis channel",
            registry=r,
        )  # fmt: skip
        self.redis_room_messages = Counter(
            "hub_redis_room_channel_messages", "Messages this instance received on per-room (sharded) Redis channels",
            registry=r,
        )  # fmt: skip

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # A series' children are looked up once (labels() checks its arguments and takes a lock each call).
        series = self._request_series.get((method, route, status))
        if series is None:
            series = self._request_series[(method, route, status)] = (
                self.http_requests.labels(method=method, route=route, status=str(status)),
                self.http_latency.labels(method=method, route=route),
            )
        series[0].inc()
        series[1].observe(seconds)

    # What the realtime engine counts: the composition root hands this object to the publisher, the
    # background emitter, the Socket.IO server's delivery and the Redis manager.

    def event_published(self, event: str) -> None:
        counter = self._published.get(event)
        if counter is None:
            counter = self._published[event] = self.events_published.labels(event=event)
        counter.inc()

    def event_publish_failed(self, event: str) -> None:
        self.events_publish_failed.labels(event=event).inc()

    def event_delivered(self, namespace: str) -> None:
        """A stream event went out to this instance's clients of a room (counted once per emit)."""
        self.events_delivered.labels(namespace=namespace).inc()

    def slow_client_cut(self, namespace: str) -> None:
        self.slow_client_disconnects.labels(namespace=namespace).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of everything in this registry."""
        return generate_latest(self.registry)
