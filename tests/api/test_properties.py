"""Property tests (hypothesis): the order state machine and the money arithmetic, through the
functions the orders domain itself uses (hub/order_states.py, hub.orders.pricing).

Deterministic in CI (derandomized, no example database), bounded, no deadline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.order_states import MOVES, TERMINAL, Actor, find_move, may_move, next_statuses
from hub.orders.pricing import body_hash, order_total, price_lines
from hub.schemas.catalog import ProductCreate
from hub.schemas.orders import OrderCreate, OrderLineIn
from store.models import OrderStatus, Product

S = OrderStatus
PROPERTY = settings(max_examples=300, derandomize=True, deadline=None, database=None)

# The capacities a caller can act in (hub.order_states.actors_for): none (a stranger), the customer,
# the market (owner or super_admin), both (an owner ordering from their own market), the sweeper.
ACTOR_SETS = [
    frozenset(),
    frozenset({Actor.CUSTOMER}),
    frozenset({Actor.MARKET}),
    frozenset({Actor.CUSTOMER, Actor.MARKET}),
    frozenset({Actor.SYSTEM}),
]
OPTIONS = ["pickup", "delivery"]
CANCELLABLE = {S.PENDING, S.CONFIRMED, S.PREPARING}
# The same limits the request models enforce, read from them.
MAX_PRICE = ProductCreate.model_json_schema()["properties"]["price_cents"]["maximum"]
MAX_QUANTITY = OrderLineIn.model_json_schema()["properties"]["quantity"]["maximum"]
MAX_LINES = OrderCreate.model_json_schema()["properties"]["items"]["maxItems"]
JSON_SAFE_INT = 2**53 - 1  # the dashboard's JavaScript reads totals as doubles
INT64_MAX = 2**63 - 1  # what MongoDB stores as an integer


def _hex_id(n: int) -> str:
    return f"{n:024x}"


# State machine


@PROPERTY
@given(
    option=st.sampled_from(OPTIONS),
    steps=st.lists(st.tuples(st.sampled_from(ACTOR_SETS), st.sampled_from(list(S))), max_size=30),
)
def test_random_walks_stay_on_the_table(option: str, steps: list[tuple[frozenset[Actor], OrderStatus]]) -> None:
    """Random callers ask for random targets; only moves of the table happen, each at most once."""
    status, visited = S.PENDING, [S.PENDING]
    for actors, target in steps:
        allowed = may_move(status, target, actors, option)  # type: ignore[arg-type]
        assert allowed == (target in next_statuses(status, actors, option))  # type: ignore[arg-type]
        if not allowed:
            continue
        move = find_move(status, target, option)  # type: ignore[arg-type]
        assert move is not None
        assert move in MOVES
        assert move.actors & actors
        status = target
        assert status not in visited, f"a cycle back to {status}: {visited}"
        visited.append(status)
    if option == "pickup":
        assert not {S.OUT_FOR_DELIVERY, S.DELIVERED} & set(visited), visited
    else:
        assert S.PICKED_UP not in visited, visited


@PROPERTY
@given(option=st.sampled_from(OPTIONS), choices=st.lists(st.integers(0, 10), min_size=10, max_size=10))
def test_the_market_always_brings_an_order_to_an_end(option: str, choices: list[int]) -> None:
    """Whatever the market picks among its allowed moves, the order ends in a terminal state of its
    kind within a few steps (the graph has no cycles and no dead ends)."""
    status = S.PENDING
    for choice in choices:
        options = next_statuses(status, frozenset({Actor.MARKET}), option)  # type: ignore[arg-type]
        if not options:
            break
        status = options[choice % len(options)]
    ends = {"pickup": {S.PICKED_UP, S.CANCELLED}, "delivery": {S.DELIVERED, S.CANCELLED}}[option]
    assert status in ends


@settings(PROPERTY, max_examples=1000)  # the whole space (640 cases): hypothesis stops once it is exhausted
@given(
    source=st.sampled_from(list(S)),
    target=st.sampled_from(list(S)),
    actors=st.sampled_from(ACTOR_SETS),
    option=st.sampled_from(OPTIONS),
)
def test_who_may_do_what(source: OrderStatus, target: OrderStatus, actors: frozenset[Actor], option: str) -> None:
    allowed = may_move(source, target, actors, option)  # type: ignore[arg-type]
    if source in TERMINAL or not actors or source is target:
        assert not allowed
    if target is S.CANCELLED and allowed:
        assert source in CANCELLABLE
    if target is S.CANCELLED and source in CANCELLABLE and Actor.MARKET in actors:
        assert allowed  # the market may cancel up to and including `preparing`
    if actors in ({Actor.CUSTOMER}, {Actor.SYSTEM}):
        assert allowed == (source is S.PENDING and target is S.CANCELLED)
    # (`delivered` is reachable only through `out_for_delivery`: the walks above check that.)
    if target is S.OUT_FOR_DELIVERY:
        assert not (allowed and option == "pickup")
    if target is S.PICKED_UP:
        assert not (allowed and option == "delivery")


def test_terminal_states_have_no_exits() -> None:
    for status in TERMINAL:
        for actors in ACTOR_SETS:
            for option in OPTIONS:
                assert next_statuses(status, actors, option) == []  # type: ignore[arg-type]
    assert {move.source for move in MOVES}.isdisjoint(TERMINAL)


# Money


def _product(index: int, price_cents: int) -> Product:
    stamp = datetime(2025, 1, 1, tzinfo=UTC)
    return Product(id=_hex_id(index + 1), market_id=_hex_id(0), name=f"p{index}", price_cents=price_cents,
                   currency="UAH", stock=0, created_at=stamp, updated_at=stamp)  # fmt: skip


_lines = st.lists(st.tuples(st.integers(1, MAX_PRICE), st.integers(1, MAX_QUANTITY)), min_size=1, max_size=MAX_LINES)


@PROPERTY
@given(lines=_lines)
@example(lines=[(MAX_PRICE, MAX_QUANTITY)] * MAX_LINES)  # the largest order the API accepts
def test_totals_are_exact_integer_sums(lines: list[tuple[int, int]]) -> None:
    products = [(_product(index, price), quantity) for index, (price, quantity) in enumerate(lines)]
    items = price_lines(products)
    assert [(item.unit_price_cents, item.quantity) for item in items] == lines
    for item in items:
        assert type(item.line_total_cents) is int
        assert item.line_total_cents == item.unit_price_cents * item.quantity
    total = order_total(items)
    assert type(total) is int
    assert total == sum(item.line_total_cents for item in items) == sum(price * qty for price, qty in lines)
    assert 0 < total <= MAX_PRICE * MAX_QUANTITY * MAX_LINES <= JSON_SAFE_INT < INT64_MAX
    # What the client receives is the same integer (orjson writes ints exactly, never as floats).
    sent = orjson.loads(orjson.dumps([item.model_dump(mode="json") for item in items]))
    assert [line["line_total_cents"] for line in sent] == [item.line_total_cents for item in items]


# Idempotency: the same order asked twice is recognised, however its lines are written.


def _order_body(lines: list[tuple[int, int]], **fields: Any) -> OrderCreate:
    items = [{"product_id": _hex_id(product), "quantity": quantity} for product, quantity in lines]
    return OrderCreate(market_id=_hex_id(0), items=items, delivery_option="pickup", payment_method="cash", **fields)


@PROPERTY
@given(
    lines=st.dictionaries(st.integers(1, 10**6), st.integers(1, MAX_QUANTITY), min_size=1, max_size=20).map(
        lambda lines: list(lines.items())
    ),
    data=st.data(),
)
def test_body_hash_ignores_line_order_and_id_case(lines: list[tuple[int, int]], data: st.DataObject) -> None:
    body = _order_body(lines)
    shuffled = data.draw(st.permutations(lines))
    same = _order_body(shuffled).model_copy()
    upper = same.model_copy(
        update={"items": [line.model_copy(update={"product_id": line.product_id.upper()}) for line in same.items]}
    )
    assert body_hash(body) == body_hash(same) == body_hash(upper)
    index = data.draw(st.integers(0, len(lines) - 1))
    product, quantity = lines[index]
    changed = [*lines[:index], (product, quantity % MAX_QUANTITY + 1), *lines[index + 1 :]]
    assert body_hash(_order_body(changed)) != body_hash(body)
    assert body_hash(_order_body(lines, notes="x")) != body_hash(body)
