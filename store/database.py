"""The collections of one database, and what is done to all of them at start."""

from __future__ import annotations

from store.analytics import OrderFigures
from store.client import Database, ping
from store.markets import Markets
from store.orders import Orders
from store.products import Products
from store.stock import OrderEffects, StockHolds
from store.users import Users
from store.webhooks import WebhookDeliveries, WebhookEndpoints


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = Users(db)
        self.markets = Markets(db)
        self.products = Products(db)
        self.orders = Orders(db)
        self.order_holds = StockHolds(db)
        self.order_effects = OrderEffects(db)
        self.order_figures = OrderFigures(db)
        self.webhook_endpoints = WebhookEndpoints(db)
        self.webhook_deliveries = WebhookDeliveries(db)

    async def create_indexes(self) -> None:
        collections = (self.users, self.markets, self.products, self.orders, self.webhook_endpoints,
                       self.webhook_deliveries)  # fmt: skip
        for collection in collections:
            await collection.create_indexes()

    async def ping(self) -> None:
        await ping(self.db)
