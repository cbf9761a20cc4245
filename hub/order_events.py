"""What the order domain tells the rest of the hub after a write has succeeded.

The order follow-up (hub/orders/followup.py) calls every listener it was given after the database write; the
realtime publisher, the statistics pusher and the email notices are listeners. A listener's
failure is logged and counted by the caller and never fails the request: the event history is
what makes realtime delivery complete, not the request path.
"""

from __future__ import annotations

from typing import Protocol

from store.models import Order, OrderStatus


class OrderListener(Protocol):
    async def order_created(self, order: Order) -> None: ...

    async def order_changed(self, order: Order, previous_status: OrderStatus) -> None: ...
