"""The state machine: the table against DESIGN.md, then every status, target and role over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from hub.order_states import Actor, may_move
from hub.settings import Settings
from store.models import OrderStatus
from tests.helpers.api import (
    Account,
    make_market,
    make_product,
    make_super_admin,
    place_order,
    set_order_status,
    sign_up,
)

S = OrderStatus
C, M, Y = Actor.CUSTOMER, Actor.MARKET, Actor.SYSTEM

# DESIGN.md, "Order states", written out independently of hub/order_states.py.
EXPECTED = {
    (S.PENDING, S.CONFIRMED, M, None),
    (S.CONFIRMED, S.PREPARING, M, None),
    (S.PREPARING, S.READY, M, None),
    (S.READY, S.PICKED_UP, M, "pickup"),
    (S.READY, S.OUT_FOR_DELIVERY, M, "delivery"),
    (S.OUT_FOR_DELIVERY, S.DELIVERED, M, None),
    (S.PENDING, S.CANCELLED, M, None),
    (S.PENDING, S.CANCELLED, C, None),
    (S.PENDING, S.CANCELLED, Y, None),
    (S.CONFIRMED, S.CANCELLED, M, None),
    (S.PREPARING, S.CANCELLED, M, None),
}

# How the market walks an order into each status.
PATHS = {
    S.PENDING: [],
    S.CONFIRMED: [S.CONFIRMED],
    S.PREPARING: [S.CONFIRMED, S.PREPARING],
    S.READY: [S.CONFIRMED, S.PREPARING, S.READY],
    S.PICKED_UP: [S.CONFIRMED, S.PREPARING, S.READY, S.PICKED_UP],
    S.OUT_FOR_DELIVERY: [S.CONFIRMED, S.PREPARING, S.READY, S.OUT_FOR_DELIVERY],
    S.DELIVERED: [S.CONFIRMED, S.PREPARING, S.READY, S.OUT_FOR_DELIVERY, S.DELIVERED],
    S.CANCELLED: [S.CANCELLED],
}


def test_table_is_the_designed_one() -> None:
    for source in S:
        for target in S:
            for actor in Actor:
                for option in ("pickup", "delivery"):
                    expected = (source, target, actor, None) in EXPECTED or (source, target, actor, option) in EXPECTED
                    assert may_move(source, target, frozenset({actor}), option) is expected, (source, target, actor)


async def test_every_status_target_and_role_over_http(client: TestClient, settings: Settings) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    other_customer = await sign_up(client)
    other_admin = await sign_up(client, "market_admin")
    await make_market(client, other_admin)
    admin = await make_super_admin(settings, client)
    market = await make_market(client, owner, delivery_options=["pickup", "delivery"])
    product = await make_product(client, owner, market["id"], stock=100_000)
    # role → (account, the actors it is, or None when it may not see the order)
    roles: dict[str, tuple[Account, frozenset[Actor] | None]] = {
        "customer-owner": (customer, frozenset({C})),
        "other-customer": (other_customer, None),
        "market-owner": (owner, frozenset({M})),
        "other-market-admin": (other_admin, None),
        "super_admin": (admin, frozenset({M})),
    }

    async def order_in(status: OrderStatus, option: str) -> dict[str, Any]:
        extra = {"delivery_address": "2 Side St"} if option == "delivery" else {}
        response = await place_order(
            client, customer, market["id"], [(product["id"], 1)], delivery_option=option, **extra
        )
        order = dict(await response.json())
        for step in PATHS[status]:
            moved = await set_order_status(client, owner, order["id"], step.value)
            assert moved.status == 200, await moved.text()
            order = dict(await moved.json())
        return order

    async def run(source: OrderStatus, option: str, role: str) -> list[str]:
        account, actors = roles[role]
        order = await order_in(source, option)
        mismatches = []
        for target in S:
            response = await set_order_status(client, account, order["id"], target.value)
            body = await response.json()
            allowed = actors is not None and may_move(source, target, actors, option)  # type: ignore[arg-type]
            expected = 404 if actors is None else 200 if allowed else 409
            code = body.get("error", {}).get("code") if response.status != 200 else None
            wanted_code = {404: "NOT_FOUND", 409: "INVALID_TRANSITION", 200: None}[expected]
            if (response.status, code) != (expected, wanted_code):
                mismatches.append(f"{option} {source}->{target} as {role}: {response.status} {code}")
            if response.status == 200:
                assert body["status"] == target.value
                assert body["status_history"][-1]["by"] == account.id
                order = await order_in(source, option)  # moved: start again from `source`
        return mismatches

    sources = {
        "pickup": [s for s in S if s not in (S.OUT_FOR_DELIVERY, S.DELIVERED)],
        "delivery": [s for s in S if s is not S.PICKED_UP],
    }
    cases = [(source, option, role) for option, statuses in sources.items() for source in statuses for role in roles]
    results = await asyncio.gather(*(run(*case) for case in cases))
    assert [line for lines in results for line in lines] == []
    assert len(cases) == 13 * 5
