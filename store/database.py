"""The collections of one database, and what is done to all of them at start."""

from __future__ import annotations

from store.client import Database, ping
from store.markets import Markets
from store.products import Products
from store.users import Users


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = Users(db)
        self.markets = Markets(db)
        self.products = Products(db)

    async def create_indexes(self) -> None:
        for collection in (self.users, self.markets, self.products):
            await collection.create_indexes()

    async def ping(self) -> None:
        await ping(self.db)
