"""Stream names and the namespace each stream is pushed on: one place for the naming scheme."""

from __future__ import annotations

DASHBOARD = "/dashboard"
ORDERS = "/orders"

ORDER_CREATED = "order:created"
ORDER_UPDATED = "order:updated"
ORDER_EVENTS = frozenset({ORDER_CREATED, ORDER_UPDATED})
STATS = "stats"
RESYNC = "resync"


def market_stream(market_id: str) -> str:
    return f"market:{market_id}"


def user_stream(user_id: str) -> str:
    return f"user:{user_id}"


def market_of(stream: object) -> str | None:
    """The market id of a `market:{id}` stream (or room), else None."""
    if isinstance(stream, str) and stream.startswith("market:"):
        return stream.removeprefix("market:")
    return None


def market_order_event(event: str, namespace: str, room: object) -> str | None:
    """The market whose order an emit reports (an order event to a market's dashboard room), else None:
    the one place that reads a domain event off the wire."""
    if namespace == DASHBOARD and event in ORDER_EVENTS:
        return market_of(room)
    return None


def namespace_of(stream: str) -> str:
    """Market streams feed dashboards; user streams feed the customer's order tracking."""
    return DASHBOARD if stream.startswith("market:") else ORDERS


# Not a stream (nothing is published to it): every authenticated connection of a user is in this
# room, so that one message reaches all of them, on every instance, to end them (hub/realtime/revocation.py).
def account_room(user_id: str) -> str:
    return f"account:{user_id}"


def is_account_room(room: object) -> bool:
    return isinstance(room, str) and room.startswith("account:")
