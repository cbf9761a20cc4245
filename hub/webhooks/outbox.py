"""Deliveries made from an order's outbox.

The order write records its events in the order document (hub/orders.py, the outbox). After the
events are in the event history (so each has its market-stream `seq`), the follow-up calls
`create_for(order)`: one delivery per outbox event per active endpoint of the market subscribed to
its type. Only then is the outbox cleared. A process that dies anywhere before that leaves the
events in the outbox, and the repair pass (the sweeper) calls this again: a delivery's id is
derived from its endpoint and its event, so a second call creates only what the first did not.
An order write that succeeded therefore always ends in its deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson

from hub.realtime.publisher import event_key
from hub.realtime.streams import market_stream
from hub.webhooks.schedule import RetrySchedule
from store.codec import epoch_ms, now
from store.events import EventLog
from store.models import Order, PendingEvent
from store.webhooks import WebhookDeliveries, WebhookDelivery, WebhookEndpoints, delivery_id

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = "the event's body is larger than 64 KiB"


class DeliveryOutbox:
    def __init__(
        self,
        endpoints: WebhookEndpoints,
        deliveries: WebhookDeliveries,
        events: EventLog,
        *,
        schedule: RetrySchedule,
        created: Callable[[], None] = lambda: None,
    ) -> None:
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.events = events
        self.schedule = schedule
        # Told when this instance made deliveries, so its sender starts on them at once.
        self.created = created

    async def create_for(self, order: Order) -> int:
        """Make the deliveries of the order's outbox events (which are in the history); how many
        this call created. Raises when it could not: the caller then leaves the outbox to the repair."""
        if not order.outbox:
            return 0
        endpoints = await self.endpoints.of_market(order.market_id, active_only=True)
        if not endpoints:
            return 0
        created = 0
        stream = market_stream(order.market_id)
        for pending in sorted(order.outbox, key=lambda pending: pending.version):
            event_type = pending.name.replace(":", ".")
            subscribed = [endpoint for endpoint in endpoints if event_type in endpoint.events]
            if not subscribed:
                continue
            key = event_key(stream, order.id, pending)
            stored = await self.events.by_key(key)
            if stored is None:
                raise RuntimeError(f"order event {key} is not in the history")
            body = self._body(order, pending, event_type, stored.payload)
            for endpoint in subscribed:
                if await self.deliveries.create(self._delivery(endpoint.id, key, order, pending, stored.seq, body)):
                    created += 1
        if created:
            self.created()
        return created

    @staticmethod
    def _body(order: Order, pending: PendingEvent, event_type: str, payload: dict[str, object]) -> str:
        """`{type, timestamp, data: {stream, seq, order, previous_status}}`: the data is the stored
        market-stream event itself, so its `seq` is the stream's."""
        at = order.status_history[pending.version - 1].at
        stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return orjson.dumps({"type": event_type, "timestamp": stamp, "data": payload}).decode()

    def _delivery(  # noqa: PLR0917 - one call site, every argument a different thing
        self, endpoint_id: str, key: str, order: Order, pending: PendingEvent, seq: int, body: str
    ) -> WebhookDelivery:
        stamp = epoch_ms(now())
        event_ms = epoch_ms(order.status_history[pending.version - 1].at)
        too_large = len(body.encode()) > MAX_BODY_BYTES
        if too_large:
            log.error("webhook body too large", extra={"order_id": order.id, "endpoint_id": endpoint_id})
        return WebhookDelivery(
            id=delivery_id(endpoint_id, key),
            endpoint_id=endpoint_id,
            market_id=order.market_id,
            event="order.created" if pending.name == "order:created" else "order.updated",
            order_id=order.id,
            stream=market_stream(order.market_id),
            seq=seq,
            status="failed" if too_large else "pending",
            last_error=TOO_LARGE if too_large else None,
            next_attempt_ms=stamp,
            give_up_ms=event_ms + self.schedule.horizon_ms,
            event_ms=event_ms,
            created_ms=stamp,
            body="" if too_large else body,
        )
