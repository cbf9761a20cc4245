"""Fuzzing: schemathesis generates requests from /api/openapi.json and sends them to a real hub on a
loopback port; every answer must be no 5xx and exactly what the spec says (documented status, the
documented body schema, the error envelope on errors, documented headers), and data the spec calls
invalid must be refused.

The hub runs in the test's event loop (the `client` fixture serves the app on 127.0.0.1); the
schemathesis calls are blocking (requests), so they run in a worker thread. Signed-in callers with
real data: a market_admin with a market, two products and an order, and the customer who placed
it. Generated path ids and body ids are often swapped for those real ones, so that most routes
reach the domain instead of stopping at 404. Bounded and deterministic (derandomized hypothesis,
no shrinking): about 20 s on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis
import requests
import schemathesis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from handlers.orders import IDEMPOTENCY_HEADER
from tests.conftest import Account, make_market, make_product, sign_up

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}
# Deleting the market or a product first would turn the rest of the run into 404s.
DESTRUCTIVE = {("DELETE", "/api/v1/markets/{id}"), ("DELETE", "/api/v1/products/{id}")}
# These take a URL that the hub would resolve, and later POST order events to: tests never send traffic
# beyond loopback (tests/test_webhooks.py covers them, with receivers on 127.0.0.1).
OUTBOUND = {("POST", "/api/v1/markets/{id}/webhooks"), ("PATCH", "/api/v1/webhooks/{id}")}
# Statuses that only the domain gives (not the validators), at least one of which each of these
# operations must have answered in a run.
REACHES_THE_DOMAIN = {
    "GET /api/v1/markets/{id}": {200},
    "PATCH /api/v1/products/{id}": {200},
    "GET /api/v1/orders/{id}": {200},
    "POST /api/v1/orders": {201},
    "PATCH /api/v1/orders/{id}/status": {200, 409},
    "GET /api/v1/analytics/markets/{id}": {200},
}
_ID = re.compile(r"^[0-9a-fA-F]{24}$")


@dataclass(frozen=True)
class RealIds:
    """Ids of objects that exist, by what a path's `{id}` names; and an order placed with an
    Idempotency-Key, whose request sent again is a replay."""

    markets: list[str]
    products: list[str]
    orders: list[str]
    placed_body: dict[str, Any]
    placed_key: str

    def for_path(self, path: str) -> list[str]:
        resource = path.removeprefix("/api/v1/").removeprefix("analytics/").split("/", 1)[0]
        return {"markets": self.markets, "products": self.products, "orders": self.orders}.get(resource, [])


def _plant_ids(case: schemathesis.Case, ids: RealIds, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    """Swap generated ids for real ones (mostly), keeping the rest of the generated request."""

    def mostly() -> bool:
        return bool(draw(st.integers(0, 3)) > 0)

    known = ids.for_path(case.operation.path)
    if case.path_parameters and "id" in case.path_parameters and known and mostly():
        case.path_parameters["id"] = draw(st.sampled_from(known))
    if case.operation.label == "POST /api/v1/orders" and draw(st.integers(0, 3)) == 0:
        case.body = dict(ids.placed_body)
        case.headers = {**(case.headers or {}), IDEMPOTENCY_HEADER: ids.placed_key}
        return
    body = case.body
    if not isinstance(body, dict) or not mostly():
        return
    if isinstance(body.get("market_id"), str) and _ID.match(body["market_id"]):
        body["market_id"] = draw(st.sampled_from(ids.markets))
    items = body.get("items")
    if isinstance(items, list) and items:
        # Distinct real products, one per line (lines beyond them would name unknown products).
        products = draw(st.permutations(ids.products))
        del items[len(products) :]
        for item, product_id in zip(items, products, strict=False):
            if isinstance(item, dict) and isinstance(item.get("product_id"), str) and _ID.match(item["product_id"]):
                item["product_id"] = product_id


def _fuzz_operation(
    operation: schemathesis.APIOperation,
    *,
    mode: GenerationMode,
    caller: Account,
    ids: RealIds,
    base_url: str,
    session: requests.Session,
    statuses: Counter[tuple[str, int]],
) -> None:
    """Raises the first failing case's report; counts the statuses seen per operation."""

    @st.composite
    def cases(draw: Callable[[st.SearchStrategy[Any]], Any]) -> schemathesis.Case:
        case: schemathesis.Case = draw(operation.as_strategy(generation_mode=mode))
        if mode is GenerationMode.POSITIVE:  # a negative case stays negative
            _plant_ids(case, ids, draw)
        return case

    @hypothesis.settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases())
    def exercise(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=base_url, session=session, headers=caller.headers, checks=CHECKS, timeout=10
        )
        statuses[operation.label, response.status_code] += 1

    exercise()


def _fuzz(base_url: str, callers: list[Account], ids: RealIds) -> tuple[list[str], Counter[tuple[str, int]]]:
    """Every operation, positive and negative, as every caller: the failures, as reports, and the
    statuses seen per operation label."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    operations = [operation for operation in operations if (operation.method.upper(), operation.path) not in OUTBOUND]
    plan = [(caller, operation, mode) for caller in callers for operation in operations for mode in EXAMPLES]
    plan.sort(key=lambda step: (step[1].method.upper(), step[1].path) in DESTRUCTIVE)
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    with requests.Session() as session:
        for caller, operation, mode in plan:
            try:
                _fuzz_operation(
                    operation, mode=mode, caller=caller, ids=ids, base_url=base_url, session=session, statuses=statuses
                )
            except Unsatisfiable:
                # Nothing in this operation can be made invalid (no body, query, or a path id that
                # is any string): there is no negative case to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, schemathesis.errors.FailureGroup) as exc:  # all reported together below
                label = f"{caller.role} {mode.value} {operation.method.upper()} {operation.path}"
                failures.append(f"--- {label}\n{exc}")
    return failures, statuses


async def test_api_answers_as_its_spec_says(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(client, owner, delivery_options=["pickup", "delivery"])
    products = [
        await make_product(client, owner, market["id"], name=name, stock=100_000) for name in ("Apples", "Pears")
    ]
    placed_body = {"market_id": market["id"], "items": [{"product_id": products[0]["id"], "quantity": 2}],
                   "delivery_option": "pickup", "payment_method": "cash"}  # fmt: skip
    placed_key = "fuzz-placed-once"
    # Both callers place it, so that either one's replay is a replay.
    orders = []
    for caller in (owner, customer):
        placed = await client.post(
            "/api/v1/orders", json=placed_body, headers={**caller.headers, IDEMPOTENCY_HEADER: placed_key}
        )
        assert placed.status == 201, await placed.text()
        orders.append((await placed.json())["id"])
    ids = RealIds(markets=[market["id"]], products=[p["id"] for p in products], orders=orders,
                  placed_body=placed_body, placed_key=placed_key)  # fmt: skip
    base_url = str(client.make_url("")).rstrip("/")

    failures, statuses = await asyncio.wait_for(asyncio.to_thread(_fuzz, base_url, [owner, customer], ids), timeout=100)

    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    # The run reached the domain, not only the validators: real objects were read, changed, created.
    for label, answers in REACHES_THE_DOMAIN.items():
        seen = {status: count for (name, status), count in statuses.items() if name == label}
        assert answers & set(seen), f"{label}: no {sorted(answers)} in {seen}"
