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
import pytest
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
    ensure_resource_availability,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from handlers.orders import IDEMPOTENCY_HEADER
from hub.settings import Settings
from tests.helpers.api import Account, make_market, make_product, make_super_admin, sign_up

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    ignored_auth,
    use_after_free,
    ensure_resource_availability,
]
EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 5}
# Deleting the market or a product first would turn the rest of the run into 404s; making products
# unavailable or the market inactive, into refused orders: these run after everything else.
DESTRUCTIVE = {("DELETE", "/api/v1/markets/{id}"), ("DELETE", "/api/v1/products/{id}")}
DISABLING = {("PATCH", "/api/v1/products/{id}"), ("PATCH", "/api/v1/markets/{id}")}
# These take a URL that the hub would resolve, and later POST order events to: tests never send traffic
# beyond loopback (tests/api/test_webhooks.py covers them, with receivers on 127.0.0.1).
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
    users: list[str]
    placed_body: dict[str, Any]
    placed_key: str

    def for_path(self, path: str) -> list[str]:
        resource = path.removeprefix("/api/v1/").removeprefix("analytics/").split("/", 1)[0]
        known = {"markets": self.markets, "products": self.products, "orders": self.orders, "users": self.users}
        return known.get(resource, [])


# Operations whose well-formed requests may still be refused with 422 by a rule decided at request time,
# which no schema can state: whether the market offers the delivery option and sells the products.
DECIDED_AT_REQUEST_TIME = {"POST /api/v1/orders"}
EMAIL_FIELDS = ("email", "contact_email")


def _cross_field_rules(case: schemathesis.Case, ids: RealIds) -> None:
    """Make a positive case keep the rules that JSON Schema cannot state (each one checked by its
    own test): the password typed twice, each product once per order, `from` before `to`, the
    owner a super_admin names being a market_admin (an existing account), an email domain that
    can receive mail."""
    query = case.query
    if isinstance(query, dict) and "from" in query and "to" in query:
        del query["from"]  # `from` must be before `to`; the default `from` is
    body = case.body
    if not isinstance(body, dict):
        return
    for field in EMAIL_FIELDS:
        # The `email` format allows domains that email validation refuses (reserved names like .local).
        if isinstance(body.get(field), str) and "@" in body[field]:
            body[field] = body[field].rpartition("@")[0] + "@example.com"
    if case.operation.label == "POST /api/v1/users/register" and "password" in body:
        body["confirm_password"] = body["password"]
    if case.operation.label == "POST /api/v1/markets" and "owner_id" in body:
        body["owner_id"] = ids.users[-1]
    items = body.get("items")
    if case.operation.label == "POST /api/v1/orders" and isinstance(items, list):
        seen: set[str] = set()
        kept = []
        for item in items:
            product_id = str(item.get("product_id", "")).lower() if isinstance(item, dict) else ""
            if product_id not in seen:
                seen.add(product_id)
                kept.append(item)
        body["items"] = kept


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

    checks = CHECKS
    if operation.label in DECIDED_AT_REQUEST_TIME:
        checks = [check for check in CHECKS if check is not positive_data_acceptance]

    @st.composite
    def cases(draw: Callable[[st.SearchStrategy[Any]], Any]) -> schemathesis.Case:
        case: schemathesis.Case = draw(operation.as_strategy(generation_mode=mode))
        if mode is GenerationMode.POSITIVE:  # a negative case stays negative
            _plant_ids(case, ids, draw)
            _cross_field_rules(case, ids)
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
            base_url=base_url, session=session, headers=caller.headers, checks=checks, timeout=10
        )
        statuses[operation.label, response.status_code] += 1

    exercise()


def _run_late(operation: schemathesis.APIOperation) -> int:
    key = (operation.method.upper(), operation.path)
    return 2 if key in DESTRUCTIVE else 1 if key in DISABLING else 0


def _fuzz(base_url: str, callers: list[Account], ids: RealIds) -> tuple[list[str], Counter[tuple[str, int]]]:
    """Every operation, positive and negative, as every caller: the failures, as reports, and the
    statuses seen per operation label."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    operations = [operation for operation in operations if (operation.method.upper(), operation.path) not in OUTBOUND]
    plan = [(caller, operation, mode) for caller in callers for operation in operations for mode in EXAMPLES]
    plan.sort(key=lambda step: _run_late(step[1]))
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


@pytest.mark.timeout(240)  # about 40 s of CPU; the wall clock grows on a busy machine
async def test_api_answers_as_its_spec_says(client: TestClient, settings: Settings) -> None:
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    # Last in the plan: its changes (a market taken down, users deactivated) come after the others' turns.
    root = await make_super_admin(settings, client)
    # What the super_admin's user administration acts on: accounts that are not callers.
    bystanders = [await sign_up(client), await sign_up(client, "market_admin")]
    market = await make_market(client, owner, delivery_options=["pickup", "delivery"])
    products = [
        await make_product(client, owner, market["id"], name=name, stock=100_000) for name in ("Apples", "Pears")
    ]
    placed_body = {"market_id": market["id"], "items": [{"product_id": products[0]["id"], "quantity": 2}],
                   "delivery_option": "pickup", "payment_method": "cash"}  # fmt: skip
    placed_key = "fuzz-placed-once"
    # Every caller places it, so that each one's replay is a replay.
    orders = []
    for caller in (owner, customer, root):
        placed = await client.post(
            "/api/v1/orders", json=placed_body, headers={**caller.headers, IDEMPOTENCY_HEADER: placed_key}
        )
        assert placed.status == 201, await placed.text()
        orders.append((await placed.json())["id"])
    ids = RealIds(markets=[market["id"]], products=[p["id"] for p in products], orders=orders,
                  users=[account.id for account in bystanders], placed_body=placed_body,
                  placed_key=placed_key)  # fmt: skip
    base_url = str(client.make_url("")).rstrip("/")

    failures, statuses = await asyncio.wait_for(
        asyncio.to_thread(_fuzz, base_url, [owner, customer, root], ids), timeout=150
    )

    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    # The run reached the domain, not only the validators: real objects were read, changed, created.
    for label, answers in REACHES_THE_DOMAIN.items():
        seen = {status: count for (name, status), count in statuses.items() if name == label}
        assert answers & set(seen), f"{label}: no {sorted(answers)} in {seen}"
