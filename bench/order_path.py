"""The order path in one process: database commands and CPU per placed order, on Motor (the
product's driver) and, for comparison only, on PyMongo's async client.

    python -m bench.order_path --orders 300 --lines 1,3 --concurrency 1,8

Runs the hub's own order services (hub/orders/: placing with an Idempotency-Key, the follow-up
with the realtime publisher writing both events to the history; emits go nowhere) on a private
nx-27017, with the client made by store/client.py (`connect`, or the bench-only
`connect_pymongo_async`). No HTTP: what is measured is the order path itself. Per order:

- database commands actually sent (a PyMongo command listener), the batched clean-up
  (hub/orders/cleanup.py) included, so the figure is amortized over the run;
- CPU of this process (time.process_time: the domain, the store code and the driver, with
  Motor's worker threads) and of the nx-27017 process (/proc);
- orders/s at the given concurrency (wall clock: disturbed on a shared machine; CPU is less so);
and, per driver, the CPU of one `find_one` by _id (the driver's own cost per command).

Loopback only; the nx-27017 process and its files are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import monitoring

from bench.run import RESULTS_DIR, sample
from hub.clock import SystemClock
from hub.metrics import HubMetrics
from hub.orders.cleanup import MarkerCleanup
from hub.orders.followup import OrderFollowUp
from hub.orders.placing import OrderPlacing
from hub.realtime.publisher import Publisher
from hub.schemas.orders import OrderCreate
from store.client import connect, connect_pymongo_async
from store.database import Store
from store.embedded import EmbeddedMongo
from store.events import EventLog
from store.models import Role, User

DRIVERS: dict[str, Callable[..., Any]] = {"motor": connect, "pymongo-async": connect_pymongo_async}
WARM_UP_ORDERS = 20


class CommandCount(monitoring.CommandListener):
    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class NoEmits:
    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> None:
        pass


class Shop:
    """One market with a few products of unbounded stock, and customers, written straight to the store."""

    def __init__(self, placing: OrderPlacing, market_id: str, product_ids: list[str], customers: list[User]) -> None:
        self.placing = placing
        self.market_id = market_id
        self.product_ids = product_ids
        self.customers = customers

    async def place(self, index: int, lines: int) -> None:
        body = OrderCreate.model_validate(
            {
                "market_id": self.market_id,
                "items": [{"product_id": pid, "quantity": 1} for pid in self.product_ids[:lines]],
                "delivery_option": "pickup",
                "payment_method": "cash",
            }
        )
        customer = self.customers[index % len(self.customers)]
        await self.placing.place(customer, body, f"bench-{uuid.uuid4().hex}")


@contextlib.asynccontextmanager
async def open_shop(url: str, driver: str, counter: CommandCount) -> AsyncIterator[tuple[Shop, MarkerCleanup]]:
    client = DRIVERS[driver](url, timeout_seconds=10, event_listeners=[counter])
    db = client[f"bench_{uuid.uuid4().hex[:10]}"]
    store = Store(db)
    await store.create_indexes()
    events = EventLog(db, max_events=1000, max_age=timedelta(hours=24))
    await events.create_indexes()
    cleanup = MarkerCleanup(store)
    follow_up = OrderFollowUp(store, publisher=Publisher(events, NoEmits(), HubMetrics()), cleanup=cleanup)
    placing = OrderPlacing(store, follow_up, cleanup, clock=SystemClock())
    market = await store.markets.insert(
        uuid.uuid4().hex[:24],
        {"name": "Bench", "description": "", "contact_email": "bench@example.com", "address": "x",
         "delivery_options": ["pickup"], "payment_methods": ["cash"], "currency": "UAH"},
    )  # fmt: skip
    products = [
        await store.products.insert(market.id, "UAH", {"name": f"P{i}", "description": "", "category": None,
                                                      "price_cents": 100 + i, "stock": 10**9, "is_available": True})
        for i in range(5)
    ]  # fmt: skip
    now = datetime.now(UTC)
    customers = [User(id=uuid.uuid4().hex[:24], email=f"c{i}@example.com", name=f"C{i}", role=Role.CUSTOMER,
                      created_at=now) for i in range(8)]  # fmt: skip
    cleanup.start()
    try:
        yield Shop(placing, market.id, [product.id for product in products], customers), cleanup
    finally:
        await cleanup.close()
        await client.drop_database(db.name)
        closed = client.close()
        if asyncio.iscoroutine(closed):  # PyMongo's async client
            await closed


async def measure(shop: Shop, cleanup: MarkerCleanup, counter: CommandCount, *, orders: int, lines: int,
                  concurrency: int, db_pid: int) -> dict[str, Any]:  # fmt: skip
    for index in range(WARM_UP_ORDERS):  # hints warm, connections open
        await shop.place(index, lines)
    await cleanup.flush()
    commands0, cpu0, wall0, db0 = counter.count, time.process_time(), time.perf_counter(), sample(db_pid)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(orders):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            await shop.place(queue.get_nowait(), lines)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await cleanup.flush()
    wall, cpu, db1 = time.perf_counter() - wall0, time.process_time() - cpu0, sample(db_pid)
    db_cpu = (db1.cpu_s - db0.cpu_s) if db0 and db1 else None
    return {
        "lines": lines,
        "concurrency": concurrency,
        "orders": orders,
        "commands_per_order": round((counter.count - commands0) / orders, 2),
        "hub_cpu_ms_per_order": round(1000 * cpu / orders, 3),
        "db_cpu_ms_per_order": round(1000 * db_cpu / orders, 3) if db_cpu is not None else None,
        "orders_per_s": round(orders / wall, 1),
    }


async def driver_cost(url: str, driver: str, commands: int) -> dict[str, Any]:
    """CPU of this process per `find_one` by _id (the cheapest command): the driver's own cost."""
    client = DRIVERS[driver](url, timeout_seconds=10)
    collection = client[f"bench_{uuid.uuid4().hex[:10]}"]["probe"]
    await collection.insert_one({"_id": "x", "name": "probe"})
    for _ in range(50):
        await collection.find_one({"_id": "x"})
    cpu0 = time.process_time()
    for _ in range(commands):
        await collection.find_one({"_id": "x"})
    cpu = time.process_time() - cpu0
    await client.drop_database(collection.database.name)
    closed = client.close()
    if asyncio.iscoroutine(closed):
        await closed
    return {"driver": driver, "find_one_cpu_us": round(1e6 * cpu / commands)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    drivers: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-order-path-") as tmp:
        mongo = EmbeddedMongo(Path(tmp))
        url = await mongo.start()
        try:
            assert mongo.process is not None
            for driver in args.drivers:
                drivers.append(await driver_cost(url, driver, 1000))
                print(json.dumps(drivers[-1]), file=sys.stderr)
            for lines in args.lines:
                for concurrency in args.concurrency:
                    for driver in args.drivers:
                        counter = CommandCount()
                        async with open_shop(url, driver, counter) as (shop, cleanup):
                            row = await measure(shop, cleanup, counter, orders=args.orders, lines=lines,
                                                concurrency=concurrency, db_pid=mongo.process.pid)  # fmt: skip
                        rows.append({"driver": driver, **row})
                        print(json.dumps(rows[-1]), file=sys.stderr)
        finally:
            await mongo.stop()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {"mode": "order-path", "started_at": started, "drivers": drivers, "rows": rows}


def table(result: dict[str, Any]) -> str:
    head = "| driver | lines | concurrency | commands/order | hub CPU ms/order | nx-27017 CPU ms/order | orders/s |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        cells = [row[key] for key in ("driver", "lines", "concurrency", "commands_per_order", "hub_cpu_ms_per_order",
                                      "db_cpu_ms_per_order", "orders_per_s")]  # fmt: skip
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    for cost in result["drivers"]:
        lines.append(f"\n{cost['driver']}: {cost['find_one_cpu_us']} µs of CPU per find_one")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.order_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--lines", type=lambda text: [int(x) for x in text.split(",")], default=[1, 3])
    parser.add_argument("--concurrency", type=lambda text: [int(x) for x in text.split(",")], default=[1, 8])
    parser.add_argument("--drivers", type=lambda text: text.split(","), default=list(DRIVERS))
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(table(result))
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"order-path-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"saved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
