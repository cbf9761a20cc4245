"""Realistic fake orders for the benchmark, shaped like the hub's Order (see DESIGN.md)."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

PRODUCTS: list[tuple[str, int]] = [
    ("Tomatoes 1 kg", 349),
    ("Sourdough bread", 420),
    ("Free-range eggs (10)", 389),
    ("Whole milk 1 l", 129),
    ("Aged gouda 250 g", 575),
    ("Apples 1 kg", 299),
    ("Fresh basil bunch", 189),
    ("Olive oil 500 ml", 1099),
]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_order(market_id: str, rng: random.Random | None = None, now: float | None = None) -> dict[str, Any]:
    """Return an order dict of roughly 600-900 bytes of JSON (2-3 item lines)."""
    r = rng or random
    ts = time.time() if now is None else now
    items: list[dict[str, Any]] = []
    for name, price in r.sample(PRODUCTS, r.randint(2, 3)):
        qty = r.randint(1, 5)
        items.append(
            {
                "product_id": uuid.uuid4().hex[:24],
                "name": name,
                "unit_price_cents": price,
                "quantity": qty,
                "line_total_cents": price * qty,
            }
        )
    created = _iso(ts)
    return {
        "id": uuid.uuid4().hex[:24],
        "market_id": market_id,
        "customer_id": uuid.uuid4().hex[:24],
        "items": items,
        "total_cents": sum(int(i["line_total_cents"]) for i in items),
        "currency": "EUR",
        "status": "pending",
        "status_history": [{"status": "pending", "at": created, "by": "customer", "reason": None}],
        "delivery_option": "delivery",
        "payment_method": "card",
        "delivery_address": "Hauptstr. 12, Berlin",
        "notes": None,
        "version": 1,
        "created_at": created,
        "updated_at": created,
    }
