"""Markets and products: who may change what, and the rules that shape the documents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from auth.policy import is_super_admin, manages_market, may_create_market
from hub.errors import Conflict, Forbidden, NotFound, ValidationFailed
from hub.realtime.revocation import Revoker
from hub.schemas.catalog import MarketCreate, MarketQuery, MarketUpdate, ProductCreate, ProductQuery, ProductUpdate
from store.markets import MarketExists, Markets
from store.models import Market, Product, User
from store.orders import Orders
from store.products import Products
from store.users import Users

# A deactivated market's products pushed to its storefronts as unavailable (at most this many).
MAX_PRODUCTS_PUSHED = 2000


class ProductChanges(Protocol):
    """Told after a product write has succeeded (the storefronts' live stock, hub/realtime/catalog.py)."""

    def products_changed(self, market_id: str, product_ids: Iterable[str]) -> None: ...


class Catalog:
    def __init__(
        self,
        markets: Markets,
        products: Products,
        users: Users,
        orders: Orders,
        revoker: Revoker,
        *,
        changes: ProductChanges | None = None,
    ) -> None:
        self.markets = markets
        self.products = products
        self.users = users
        self.orders = orders
        self.revoker = revoker
        self.changes = changes

    def _changed(self, product: Product) -> None:
        if self.changes is not None:
            self.changes.products_changed(product.market_id, [product.id])

    # Markets

    async def market(self, market_id: str, *, viewer: User | None = None) -> Market:
        """An active market, or one the viewer manages; anything else is not found."""
        market = await self.markets.get(market_id)
        if market is None or not (market.is_active or (viewer is not None and manages_market(viewer, market))):
            raise NotFound("Market not found")
        return market

    async def list_markets(self, query: MarketQuery) -> tuple[list[Market], int]:
        return await self.markets.search(verified=query.verified, text=query.search, skip=query.skip, limit=query.limit)

    async def create_market(self, user: User, body: MarketCreate) -> Market:
        if not may_create_market(user):
            raise Forbidden("Only market admins can create markets")
        if body.owner_id is not None and not is_super_admin(user):
            # A documented field that this role may not set: a well-formed request, not allowed (403).
            raise Forbidden("Only a super_admin chooses a market's owner")
        owner_id = body.owner_id.lower() if body.owner_id else user.id
        if owner_id != user.id:
            owner = await self.users.get(owner_id)
            if owner is None or not owner.is_active or not may_create_market(owner):
                detail = {"loc": ["owner_id"], "msg": "must name an active market_admin", "type": "value_error"}
                raise ValidationFailed(details=[detail])
        fields = body.model_dump(exclude={"owner_id"}, mode="json")
        fields = {key: value for key, value in fields.items() if value is not None}
        fields.setdefault("description", "")
        try:
            return await self.markets.insert(owner_id, fields)
        except MarketExists:
            raise Conflict("This owner already has a market", code="MARKET_EXISTS") from None

    async def managed_market(self, user: User, market_id: str) -> Market:
        """A market the user manages: 404 when it does not exist, 403 when it is someone else's."""
        market = await self.markets.get(market_id)
        if market is None:
            raise NotFound("Market not found")
        if not manages_market(user, market):
            raise Forbidden("You do not manage this market")
        return market

    async def own_market(self, user: User) -> Market:
        """The market a market_admin owns (whether or not it is active); 404 when they have none."""
        market = await self.markets.by_owner(user.id)
        if market is None:
            raise NotFound("Market not found")
        return market

    async def update_market(self, user: User, market_id: str, body: MarketUpdate) -> Market:
        market = await self.managed_market(user, market_id)
        changes = body.model_dump(exclude_unset=True, mode="json")
        if "is_active" in changes and not is_super_admin(user):
            # A documented field that this role may not set (the owner DELETEs the market instead).
            raise Forbidden("Only a super_admin sets is_active")
        if changes.get("currency", market.currency) != market.currency and await self._has_orders(market):
            # Its totals would add amounts of two currencies.
            raise Conflict("The market has orders: its currency can no longer change", code="CURRENCY_LOCKED")
        if not changes:
            return market
        updated = await self.markets.update(market.id, changes)
        if updated is None:
            raise NotFound("Market not found")
        if updated.currency != market.currency:
            await self.products.follow_market(market.id, currency=updated.currency)
        if updated.is_active != market.is_active:
            await self.products.follow_market(market.id, active=updated.is_active)
            await self._all_products_changed(market.id)
            if not updated.is_active:
                await self.revoker.revoke_market(market.id, "market_deleted")
        return updated

    async def _all_products_changed(self, market_id: str) -> None:
        """The market closed or reopened: open storefronts see each of its products change availability."""
        if self.changes is not None:
            listed = await self.products.of_market(market_id, limit=MAX_PRODUCTS_PUSHED)
            self.changes.products_changed(market_id, [product.id for product in listed])

    async def _has_orders(self, market: Market) -> bool:
        return market.total_orders > 0 or await self.orders.exists_for_market(market.id)

    async def verify_market(self, user: User, market_id: str) -> Market:
        if not is_super_admin(user):
            raise Forbidden("Only a super_admin verifies markets")
        updated = await self.markets.update(market_id, {"verified": True})
        if updated is None:
            raise NotFound("Market not found")
        return updated

    async def delete_market(self, user: User, market_id: str) -> None:
        market = await self.managed_market(user, market_id)
        await self.markets.update(market.id, {"is_active": False})
        await self.products.follow_market(market.id, active=False)
        await self.revoker.revoke_market(market.id, "market_deleted")
        await self._all_products_changed(market.id)

    # Products

    async def product(self, product_id: str, *, viewer: User | None = None) -> Product:
        """A product of an active market, or one the viewer manages; anything else is not found."""
        product = await self.products.get(product_id)
        if product is None:
            raise NotFound("Product not found")
        if not product.market_active:
            market = await self.markets.get(product.market_id)
            if viewer is None or market is None or not manages_market(viewer, market):
                raise NotFound("Product not found")
        return product

    async def list_products(self, query: ProductQuery) -> tuple[list[Product], int]:
        return await self.products.search(
            market_id=query.market_id,
            text=query.search,
            category=query.category,
            in_stock=query.in_stock,
            skip=query.skip,
            limit=query.limit,
        )

    async def create_product(self, user: User, body: ProductCreate) -> Product:
        market = await self.managed_market(user, body.market_id)
        if not market.is_active:
            raise NotFound("Market not found")
        fields: dict[str, Any] = body.model_dump(exclude={"market_id"})
        fields["description"] = fields["description"] or ""
        product = await self.products.insert(market.id, market.currency, fields)
        self._changed(product)
        return product

    async def _managed_product(self, user: User, product_id: str) -> Product:
        product = await self.product(product_id)
        await self.managed_market(user, product.market_id)
        return product

    async def update_product(self, user: User, product_id: str, body: ProductUpdate) -> Product:
        product = await self._managed_product(user, product_id)
        changes = body.model_dump(exclude_unset=True)
        if not changes:
            return product
        updated = await self.products.update(product.id, changes)
        if updated is None:
            raise NotFound("Product not found")
        self._changed(updated)
        return updated

    async def delete_product(self, user: User, product_id: str) -> None:
        product = await self._managed_product(user, product_id)
        await self.products.delete(product.id)
        self._changed(product)
