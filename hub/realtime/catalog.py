"""Live stock for storefronts (`/catalog`): which products changed, coalesced per market.

The domain says explicitly what changed: the order rules call this as an order listener (an order
takes its lines' stock when placed and gives it back when cancelled) and the catalog rules call
`products_changed` after an edit or a removal. A market's changed products are pushed coalesced
(hub/realtime/coalescing.py; with the 0.25 s interval at most 4 a second, well within 1 s of a
change), each push with the products' current values.

The push is emitted through the Socket.IO server's manager: local clients at once, the other
instances' clients through Redis when it is configured. Only the instance where the change
happened pushes it, so a market changed on several instances at once may see up to 4 pushes a
second from each of them (documented in docs/realtime.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel

from hub.realtime.coalescing import CoalescedPushes
from store.codec import now
from store.models import Order, OrderStatus, Product
from store.products import Products

log = logging.getLogger(__name__)

CATALOG_NAMESPACE = "/catalog"
CATALOG_EVENT = "catalog"
# A storefront's snapshot holds every product of the market, up to this many.
MAX_SNAPSHOT_PRODUCTS = 2000


def catalog_room(market_id: str) -> str:
    return f"catalog:{market_id}"


class ProductLevel(BaseModel):
    """What a storefront needs to know live about one product."""

    product_id: str
    stock: int
    is_available: bool
    price_cents: int

    @classmethod
    def of(cls, product: Product) -> ProductLevel:
        return cls(
            product_id=product.id,
            stock=max(product.stock, 0),
            is_available=product.is_available and product.market_active,
            price_cents=product.price_cents,
        )

    @classmethod
    def removed(cls, product_id: str) -> ProductLevel:
        return cls(product_id=product_id, stock=0, is_available=False, price_cents=0)


class CatalogMessage(BaseModel):
    """The `catalog` event: every product on connect, the changed ones afterwards."""

    market_id: str
    products: list[ProductLevel]
    at: str


class Emitter(Protocol):
    """The Socket.IO server: `emit` goes through its manager (and Redis, when configured)."""

    async def emit(self, event: str, data: Any = None, *, room: Any = None, namespace: Any = None) -> Any: ...


class CatalogPusher:
    """An order listener (hub/order_events.py) and the catalog's ProductChanges (hub/catalog.py):
    pushes coalesced `catalog` events."""

    def __init__(self, server: Emitter, products: Products, *, interval: float) -> None:
        self.server = server
        self.products = products
        self.pushes = 0
        self._pushes = CoalescedPushes(self._push, interval=interval)

    # What changed

    def products_changed(self, market_id: str, product_ids: Iterable[str]) -> None:
        ids = set(product_ids)
        if not ids:
            return
        self._pushes.mark(market_id, ids)

    async def order_created(self, order: Order) -> None:
        self.products_changed(order.market_id, (item.product_id for item in order.items))

    async def order_changed(self, order: Order, previous_status: OrderStatus) -> None:
        if order.status is OrderStatus.CANCELLED and previous_status is not OrderStatus.CANCELLED:
            self.products_changed(order.market_id, (item.product_id for item in order.items))

    # What storefronts get

    async def snapshot(self, market_id: str) -> dict[str, Any]:
        products = await self.products.of_market(market_id, limit=MAX_SNAPSHOT_PRODUCTS)
        return self._message(market_id, [ProductLevel.of(product) for product in products])

    async def close(self) -> None:
        await self._pushes.close()

    async def _push(self, market_id: str, changed: set[str]) -> None:
        product_ids = sorted(changed)
        try:
            found = await self.products.get_many(product_ids)
        except Exception:  # the storefronts keep the last values; the next change pushes again
            log.exception("catalog push failed", extra={"market_id": market_id})
            return
        levels = [
            ProductLevel.of(found[product_id]) if product_id in found else ProductLevel.removed(product_id)
            for product_id in product_ids
        ]
        self.pushes += 1
        message = self._message(market_id, levels)
        await self.server.emit(CATALOG_EVENT, message, room=catalog_room(market_id), namespace=CATALOG_NAMESPACE)

    @staticmethod
    def _message(market_id: str, levels: list[ProductLevel]) -> dict[str, Any]:
        at = now().isoformat().replace("+00:00", "Z")
        return CatalogMessage(market_id=market_id, products=levels, at=at).model_dump(mode="json")
