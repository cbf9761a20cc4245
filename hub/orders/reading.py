"""Reading orders, with the visibility rules (auth/policy.py): someone who may not see an order
is told it does not exist."""

from __future__ import annotations

from typing import Any

from auth.policy import Principal, is_super_admin, may_see_order
from hub.errors import NotFound
from hub.schemas.orders import OrderQuery
from store.codec import parse_id
from store.database import Store
from store.models import Market, Order, Role, User


class OrderReader:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, user: Principal, order_id: str) -> Order:
        order, _ = await self.get_with_market(user, order_id)
        return order

    async def get_with_market(self, user: Principal, order_id: str) -> tuple[Order, Market | None]:
        """The order and its market (read to decide who may see it)."""
        order = await self.store.orders.get(order_id)
        if order is None:
            raise NotFound("Order not found")
        market = await self.store.markets.get(order.market_id)
        if not may_see_order(user, order, market):
            raise NotFound("Order not found")
        return order, market

    async def list_orders(self, user: User, query: OrderQuery) -> tuple[list[Order], int]:
        """A customer's own orders, a market admin's market's orders, or (super_admin) all; newest first."""
        scope: dict[str, Any] = {}
        if is_super_admin(user):
            pass
        elif user.role is Role.MARKET_ADMIN:
            market = await self.store.markets.by_owner(user.id)
            if market is None:
                return [], 0
            scope["market_id"] = market.id
        else:
            scope["customer_id"] = user.id
        if query.market_id is not None:
            market_id = parse_id(query.market_id)
            if scope.get("market_id", market_id) != market_id:
                return [], 0
            scope["market_id"] = market_id
        if query.status is not None:
            scope["status"] = query.status.value
        return await self.store.orders.search(scope, skip=query.skip, limit=query.limit)
