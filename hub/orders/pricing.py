"""Pure functions of an order's lines: prices, totals, the canonical hash of a request body."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson

from hub.schemas.orders import OrderCreate
from store.models import OrderItem, Product


def body_hash(body: OrderCreate) -> str:
    """The same order asked twice hashes the same, whatever the order of lines or id case."""
    data = body.model_dump(mode="json")
    data["market_id"] = data["market_id"].lower()
    data["items"] = sorted(
        ({"product_id": line["product_id"].lower(), "quantity": line["quantity"]} for line in data["items"]),
        key=lambda line: str(line["product_id"]),
    )
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def line_item(product_id: str, name: str, unit_price_cents: int, quantity: int) -> OrderItem:
    """An order line at the product's price when it was taken: integer minor units, exact."""
    return OrderItem(
        product_id=product_id,
        name=name,
        unit_price_cents=unit_price_cents,
        quantity=quantity,
        line_total_cents=unit_price_cents * quantity,
    )


def price_lines(lines: Sequence[tuple[Product, int]]) -> list[OrderItem]:
    """Order lines at the products' current prices."""
    return [line_item(product.id, product.name, product.price_cents, quantity) for product, quantity in lines]


def order_total(items: Sequence[OrderItem]) -> int:
    return sum(item.line_total_cents for item in items)
