"""The order state machine: THE table of moves and who may make each one.

Everything else (the orders domain, the REST handler, the timeout sweeper, the tests) asks this
module; nothing re-encodes the table (static/js/states.js mirrors it for the dashboard's buttons).

    pending → confirmed → preparing → ready → picked_up                     (pickup)
                                       ready → out_for_delivery → delivered  (delivery)
    pending | confirmed | preparing → cancelled
    terminal: picked_up, delivered, cancelled

The market (its owner, or a super_admin) moves orders forward and may cancel up to and including
`preparing`; the customer who placed the order may only cancel while it is `pending`; the hub
itself ("system") cancels `pending` orders that were not confirmed in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from auth.policy import manages_market
from store.models import DeliveryOption, Market, Order, OrderStatus, User

S = OrderStatus


class Actor(StrEnum):
    CUSTOMER = "customer"  # the customer who placed the order
    MARKET = "market"  # the market's owner, or a super_admin
    SYSTEM = "system"  # the hub's own sweeper


SYSTEM_ACTOR_ID = "system"


@dataclass(frozen=True)
class Move:
    source: OrderStatus
    target: OrderStatus
    actors: frozenset[Actor]
    # Only for orders leaving the market this way (ready → picked_up is pickup only, ...).
    delivery_option: DeliveryOption | None = None


_MARKET = frozenset({Actor.MARKET})

MOVES: tuple[Move, ...] = (
    Move(S.PENDING, S.CONFIRMED, _MARKET),
    Move(S.CONFIRMED, S.PREPARING, _MARKET),
    Move(S.PREPARING, S.READY, _MARKET),
    Move(S.READY, S.PICKED_UP, _MARKET, delivery_option="pickup"),
    Move(S.READY, S.OUT_FOR_DELIVERY, _MARKET, delivery_option="delivery"),
    Move(S.OUT_FOR_DELIVERY, S.DELIVERED, _MARKET),
    Move(S.PENDING, S.CANCELLED, frozenset({Actor.MARKET, Actor.CUSTOMER, Actor.SYSTEM})),
    Move(S.CONFIRMED, S.CANCELLED, _MARKET),
    Move(S.PREPARING, S.CANCELLED, _MARKET),
)

TERMINAL: frozenset[OrderStatus] = frozenset({S.PICKED_UP, S.DELIVERED, S.CANCELLED})

# Statuses that put the order's stock back when entered (exactly once: only the CAS winner does it).
RESTOCKING: frozenset[OrderStatus] = frozenset({S.CANCELLED})


def actors_for(user: User, order: Order, market: Market | None) -> frozenset[Actor]:
    """The capacities in which `user` acts on `order` (a market owner may also be its customer)."""
    actors: set[Actor] = set()
    if order.customer_id == user.id:
        actors.add(Actor.CUSTOMER)
    if market is not None and manages_market(user, market):
        actors.add(Actor.MARKET)
    return frozenset(actors)


def find_move(source: OrderStatus, target: OrderStatus, delivery_option: DeliveryOption) -> Move | None:
    for move in MOVES:
        if move.source is source and move.target is target:
            if move.delivery_option is not None and move.delivery_option != delivery_option:
                return None
            return move
    return None


def may_move(
    source: OrderStatus, target: OrderStatus, actors: frozenset[Actor], delivery_option: DeliveryOption
) -> bool:
    move = find_move(source, target, delivery_option)
    return move is not None and bool(move.actors & actors)


def next_statuses(source: OrderStatus, actors: frozenset[Actor], delivery_option: DeliveryOption) -> list[OrderStatus]:
    """Where these actors may take an order in `source`, in table order."""
    targets = (move.target for move in MOVES if move.source is source)
    return [target for target in targets if may_move(source, target, actors, delivery_option)]
