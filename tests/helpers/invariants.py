"""The invariant checker: a seeded, bounded, concurrent workload against two hub processes with
faults injected, then a check of what must hold whatever happened.

    python -m tests.helpers.invariants --seed 7 --customers 40 --markets 6 --operations 4000

Topology: two `python -m hub` processes sharing one nx-27017 database (or MONGODB_URL) and a
private redis-server. Markets with a few products of limited stock; customers place orders
concurrently on either instance (random lines; some with an Idempotency-Key, retried after the
answer or raced from two or three requests at once, on either instance); customers cancel
their pending orders; market admins move orders forward or cancel them (half of the time with
`expected_version`). Every market has a dashboard and every customer an /orders client, on
either instance; each applies its stream as static/js/live.js does (in seq order, `replay` on a
gap, `auth.since` on reconnect). Faults, at fixed points of the operation count: Redis stopped
and started; instance B killed with SIGKILL mid-traffic and restarted on the same port; a
dashboard that never reads (a stalled long-polling session).

Afterwards, with the hub's own repair pass run for interrupted placements (what its sweeper
does once they are old enough), it checks:
- stock: for every product, stock + quantities of its non-cancelled orders == initial stock,
  and no hold is left on it;
- orders: every acknowledged (201/200) order exists, exactly once per logical request (each
  request carries a unique tag in `notes`), every answer for one Idempotency-Key named the same
  order, a request refused with a definite 4xx left no order, and the database holds no order
  that no request asked for; every order's history is a path of the state machine;
- market counters (total_orders, total_revenue_cents) equal a recount of non-cancelled orders;
- streams: the history holds every seq of every stream; every dashboard / customer client ends
  (after asking `replay` for the tail, as the JS client would) with every event of its stream
  exactly once, in seq order, consecutive, and what it saw matches the database (one
  order:created per order, one order:updated per status change, last status = stored status);
  no connection was sent the same event twice; nothing of another market or customer reached
  anyone.

Seeded: operation choices come from random.Random(seed) (one generator per actor); timing is
the machine's, so two runs with one seed do the same things, not in the same interleaving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from hub.clock import SystemClock
from hub.order_states import Actor, may_move, next_statuses
from hub.orders.followup import OUTBOX_REPAIR_AFTER, OrderFollowUp
from hub.orders.reading import OrderReader
from hub.orders.status import OrderStatusChanges
from hub.orders.sweeper import OrderSweeper
from store.client import connect
from store.database import Store
from store.events import EventLog
from store.models import OrderStatus
from tests.helpers.api import Account, make_market, make_product, place_order, set_order_status, sign_up
from tests.helpers.nx import NxServer
from tests.helpers.processes import HubFleet, HubProcess, RedisServer
from tests.helpers.socket_clients import dashboard_auth
from tests.realtime.test_realtime_slow_client import open_stalled_dashboard

REQUEST_TIMEOUT_SECONDS = 15
SETUP_CONCURRENCY = 4
KEYED_ATTEMPTS = 3
RECONNECT_SECONDS = 40
CATCH_UP_SECONDS = 20
HUB_SETTINGS = {
    "rate_limit_per_minute": "1000000",
    "rate_limit_per_hour": "10000000",
    "socket_max_queue_bytes": str(64 * 1024),
    # The sweeper publishes what a killed instance left in order outboxes: every second here, so
    # the run need not wait out the production interval.
    "order_sweep_interval_seconds": "1",
    "socket_events_per_second": "200",
    "socket_events_burst": "400",
}
DEFINITE_REFUSALS = frozenset({"INSUFFICIENT_STOCK", "IDEMPOTENCY_MISMATCH", "VALIDATION_ERROR", "NOT_FOUND"})
MARKET_ACTOR = frozenset({Actor.MARKET})


@dataclass(frozen=True)
class Config:
    seed: int = 1
    customers: int = 8
    markets: int = 3
    operations: int = 300
    products_per_market: int = 3
    # The operation phase stops here even if operations are left (bounded in time, not only count).
    max_seconds: float = 120
    faults: bool = True
    # SIGKILL instance B while requests are in flight on it. False: B is first taken out of
    # rotation (as a load balancer would) and killed once nothing is in flight on it: a gentler
    # fault, for runs that look at something other than crash repair (docs/architecture.md).
    kill_under_load: bool = True


@dataclass
class Placement:
    """One logical order request: its attempts share the tag (and the key, when it has one)."""

    tag: str
    customer: Account
    market_id: str
    lines: list[tuple[str, int]]
    key: str | None
    acks: list[str] = field(default_factory=list)  # order ids answered with 201/200
    codes: list[str] = field(default_factory=list)  # every attempt's outcome
    refused: bool = False  # a definite 4xx: no order may exist
    in_doubt: bool = False  # no definite answer (connection lost mid-request): 0 or 1 order


@dataclass
class Report:
    config: Config
    counts: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def violation(self, message: str) -> None:
        self.violations.append(message)

    def summary(self) -> str:
        lines = [f"invariants: seed={self.config.seed} customers={self.config.customers} "
                 f"markets={self.config.markets} operations={self.config.operations}"]  # fmt: skip
        lines += [f"  {name}: {value}" for name, value in sorted(self.counts.items())]
        lines += [f"  time {name}: {value:.1f}s" for name, value in self.seconds.items()]
        lines.append(f"  violations: {len(self.violations)}")
        lines += [f"    - {message}" for message in self.violations[:50]]
        record = {"seed": self.config.seed, "counts": dict(self.counts), "violations": len(self.violations),
                  "seconds": {k: round(v, 1) for k, v in self.seconds.items()}}  # fmt: skip
        lines.append(json.dumps(record, sort_keys=True))
        return "\n".join(lines)


class Budget:
    """The shared operation count; `progress` is how much of it has been handed out."""

    def __init__(self, total: int, deadline: float) -> None:
        self.total = total
        self.given = 0
        self.deadline = deadline
        self.changed = asyncio.Event()

    def take(self) -> bool:
        if self.given >= self.total or time.monotonic() > self.deadline:
            self.given = self.total
            self.changed.set()
            return False
        self.given += 1
        self.changed.set()
        return True

    @property
    def progress(self) -> float:
        return self.given / self.total

    async def reached(self, fraction: float) -> None:
        while self.progress < fraction:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1)


# Stream followers: static/js/live.js in Python, recording what they see


@dataclass
class Connection:
    sio: socketio.AsyncClient
    url: str
    seen: set[int] = field(default_factory=set)


class StreamFollower:
    """One client of one stream that applies events in seq order, asks `replay` on a gap and
    reconnects with `auth.since`, recording everything for the checks."""

    def __init__(self, label: str, namespace: str, auth: dict[str, Any], stream: str, *, urls: list[str],
                 prefer: int, report: Report, owner: Callable[[dict[str, Any]], bool]) -> None:  # fmt: skip
        self.label = label
        self.namespace = namespace
        self.auth = auth
        self.stream = stream
        self.urls = urls
        self.prefer = prefer
        self.report = report
        self.owner = owner  # does this order belong on this stream?
        self.applied: list[dict[str, Any]] = []
        self.last = 0
        self.busy = False
        self.queue: list[dict[str, Any]] = []
        self.generation = 0
        self.connection: Connection | None = None
        self.closing = False
        self.connected = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def start(self) -> None:
        if not await self._connect_once(self.urls[self.prefer]):
            raise RuntimeError(f"{self.label}: could not connect")

    async def _connect_once(self, url: str) -> bool:
        sio = socketio.AsyncClient(reconnection=False)
        connection = Connection(sio, url)
        for name in ("order:created", "order:updated"):
            sio.on(name, self._handler(connection, name), namespace=self.namespace)
        sio.on("resync", self._on_resync, namespace=self.namespace)
        sio.on("disconnect", self._disconnect_handler(connection), namespace=self.namespace)
        auth = {**self.auth, "since": {self.stream: self.last}}
        self.connection = connection
        try:
            await sio.connect(url, namespaces=[self.namespace], auth=auth, transports=["websocket"], wait_timeout=5)
        except (socketio.exceptions.ConnectionError, OSError, TimeoutError):
            with contextlib.suppress(Exception):
                await sio.disconnect()
            return False
        self.report.counts["socket_connects"] += 1
        self.connected.set()
        return True

    def _handler(self, connection: Connection, name: str) -> Callable[[Any], None]:
        def on_event(payload: Any) -> None:
            if connection is not self.connection:
                return
            if not self._belongs(name, payload):
                return
            seq = int(payload["seq"])
            if seq in connection.seen:
                self.report.violation(f"{self.label}: seq {seq} sent twice on one connection")
            connection.seen.add(seq)
            self._process({"event": name, **payload})

        return on_event

    def _belongs(self, name: str, payload: Any) -> bool:
        if not isinstance(payload, dict) or not isinstance(payload.get("seq"), int):
            self.report.violation(f"{self.label}: malformed {name}: {payload!r:.200}")
            return False
        order = payload.get("order")
        if payload.get("stream") != self.stream or not isinstance(order, dict) or not self.owner(order):
            self.report.violation(f"{self.label}: foreign event {name} stream={payload.get('stream')}")
            return False
        return True

    def _on_resync(self, payload: Any = None) -> None:
        # Every event of this run is in the history: a resync means a hole in it. As the JS
        # client does (after reloading over REST), carry on from the seq it names.
        self.report.violation(f"{self.label}: resync {payload!r} (last applied {self.last})")
        seq = payload.get("seq") if isinstance(payload, dict) else None
        if isinstance(seq, int) and seq > self.last:
            self.last = seq

    def _process(self, event: dict[str, Any]) -> None:
        if self.busy:
            self.queue.append(event)
            return
        seq = event["seq"]
        if seq <= self.last:
            self.report.counts["stale_deliveries_dropped"] += 1
        elif seq == self.last + 1:
            self._apply(event)
        else:
            self.busy = True
            self.queue.append(event)
            self.report.counts["gaps_replayed"] += 1
            self._spawn(self._replay(self.generation))

    def _apply(self, event: dict[str, Any]) -> None:
        self.applied.append(event)
        self.last = event["seq"]

    async def _replay(self, generation: int) -> None:
        events = await self._ask_replay()
        if events is None:
            await asyncio.sleep(0.5)  # not hammering a hub that cannot answer now
        if generation != self.generation:
            return  # the connection changed meanwhile; its `since` recovers the rest
        for event in sorted(events or [], key=lambda e: int(e.get("seq", 0))):
            if event["seq"] == self.last + 1 and self._belongs(str(event.get("event")), event):
                self._apply(event)
        self.busy = False
        queued, self.queue = self.queue, []
        for event in queued:
            self._process(event)

    async def _ask_replay(self) -> list[dict[str, Any]] | None:
        connection = self.connection
        if connection is None:
            return None
        try:
            answer = await connection.sio.call(
                "replay", {"stream": self.stream, "since": self.last}, namespace=self.namespace, timeout=8
            )
        except (socketio.exceptions.SocketIOError, OSError, TimeoutError):
            self.report.counts["replay_failures"] += 1
            return None
        if not isinstance(answer, list):
            self.report.counts["replay_failures"] += 1
            return None
        return answer

    def _disconnect_handler(self, connection: Connection) -> Callable[..., None]:
        def on_disconnect(*_: Any) -> None:
            if connection is not self.connection or self.closing:
                return
            self.connected.clear()
            self.generation += 1
            self.busy = False
            self.queue = []
            self.report.counts["socket_disconnects"] += 1
            self._spawn(self._reconnect())

        return on_disconnect

    async def _reconnect(self) -> None:
        deadline = time.monotonic() + RECONNECT_SECONDS
        for attempt in itertools.count():
            if self.closing:
                return
            if await self._connect_once(self.urls[(self.prefer + attempt) % len(self.urls)]):
                return
            if time.monotonic() > deadline:
                self.report.violation(f"{self.label}: could not reconnect within {RECONNECT_SECONDS}s")
                return
            await asyncio.sleep(min(1.0, 0.2 * (attempt + 1)))

    async def catch_up(self, target: int) -> None:
        """What a client does at the end: ask for the tail until it has everything up to `target`."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while self.last < target and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), max(0.1, deadline - time.monotonic()))
            if self.busy:
                await asyncio.sleep(0.1)
                continue
            self.busy = True
            generation = self.generation
            await self._replay(generation)
            if generation != self.generation:
                self.busy = False

    async def close(self) -> None:
        self.closing = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.sio.disconnect()


# The workload


@dataclass
class Shop:
    admin: Account
    market_id: str
    products: dict[str, int]  # product id -> initial stock


class Workload:
    def __init__(self, config: Config, fleet: HubFleet, redis: RedisServer, db_name: str) -> None:
        self.config = config
        self.fleet = fleet
        self.redis = redis
        self.db_name = db_name
        self.report = Report(config)
        self.rng = random.Random(config.seed)
        self.hubs: list[HubProcess] = []
        self.http: list[aiohttp.ClientSession] = []
        self.shops: list[Shop] = []
        self.customers: list[Account] = []
        self.placements: list[Placement] = []
        self.followers: list[StreamFollower] = []
        self.orders_of: dict[str, list[str]] = defaultdict(list)  # customer id -> acknowledged order ids
        self.tags = itertools.count(1)
        self.budget = Budget(config.operations, time.monotonic() + config.max_seconds)  # restarted after setup
        self.stalled: str | None = None
        self.in_flight = [0, 0]
        self.avoid: int | None = None  # a hub taken out of rotation

    @contextlib.contextmanager
    def using(self, hub: int) -> Iterator[aiohttp.ClientSession]:
        self.in_flight[hub] += 1
        try:
            yield self.http[hub]
        finally:
            self.in_flight[hub] -= 1

    def actor_rng(self, name: str) -> random.Random:
        return random.Random(f"{self.config.seed}:{name}")

    def pick(self, rng: random.Random) -> int:
        hub = rng.randrange(len(self.hubs))
        return 1 - hub if hub == self.avoid else hub

    # Setup

    async def start(self) -> None:
        started = time.monotonic()
        channel = f"inv-{uuid.uuid4().hex[:12]}"
        self.hubs = list(await asyncio.gather(*(
            asyncio.to_thread(self.fleet.start, db_name=self.db_name, redis_url=self.redis.url,
                              redis_channel=channel, **HUB_SETTINGS)
            for _ in range(2)
        )))  # fmt: skip
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        self.http = [aiohttp.ClientSession(base_url=hub.url, timeout=timeout) for hub in self.hubs]
        rng = self.rng
        admins = await asyncio.gather(*(sign_up(self.http[i % 2], "market_admin") for i in range(self.config.markets)))
        for index, admin in enumerate(admins):
            http = self.http[index % 2]
            market = await make_market(http, admin, delivery_options=["pickup", "delivery"])
            products = {}
            for number in range(self.config.products_per_market):
                stock = rng.randint(10, 60)
                product = await make_product(http, admin, market["id"], name=f"Product {number}",
                                             price_cents=rng.randint(50, 5000), stock=stock)  # fmt: skip
                products[product["id"]] = stock
            self.shops.append(Shop(admin, market["id"], products))
        # A few sign-ups at a time: each hashes a password, and 40 at once on a loaded machine outlast
        # REQUEST_TIMEOUT_SECONDS (setup only; the operations keep their concurrency).
        signing_up = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def customer(index: int) -> Account:
            async with signing_up:
                return await sign_up(self.http[index % 2], "customer")

        self.customers = list(await asyncio.gather(*(customer(i) for i in range(self.config.customers))))
        urls = [hub.url for hub in self.hubs]
        for index, shop in enumerate(self.shops):
            self.followers.append(StreamFollower(
                f"dashboard[{index}]", "/dashboard", dashboard_auth(shop.admin, shop.market_id),
                f"market:{shop.market_id}", urls=urls, prefer=self.pick(rng), report=self.report,
                owner=lambda order, market_id=shop.market_id: order.get("market_id") == market_id,
            ))  # fmt: skip
        for index, customer in enumerate(self.customers):
            self.followers.append(StreamFollower(
                f"orders[{index}]", "/orders", {"token": customer.token}, f"user:{customer.id}", urls=urls,
                prefer=self.pick(rng), report=self.report,
                owner=lambda order, user_id=customer.id: order.get("customer_id") == user_id,
            ))  # fmt: skip
        await asyncio.gather(*(follower.start() for follower in self.followers))
        self.report.seconds["setup"] = time.monotonic() - started
        # The operations' time limit counts from here: a slow setup (a loaded machine) must not eat it.
        self.budget = Budget(self.config.operations, time.monotonic() + self.config.max_seconds)

    async def close(self) -> None:
        await asyncio.gather(*(follower.close() for follower in self.followers), return_exceptions=True)
        for session in self.http:
            await session.close()

    # Operations

    async def run(self) -> None:
        started = time.monotonic()
        actors = [self.customer(customer, index) for index, customer in enumerate(self.customers)]
        actors += [self.market_admin(shop, index) for index, shop in enumerate(self.shops)]
        faults = asyncio.ensure_future(self.faults() if self.config.faults else asyncio.sleep(0))
        await asyncio.gather(*actors)
        await faults
        self.report.seconds["operations"] = time.monotonic() - started

    async def customer(self, customer: Account, index: int) -> None:
        rng = self.actor_rng(f"customer:{index}")
        while self.budget.take():
            roll = rng.random()
            if roll < 0.2 and self.orders_of[customer.id]:
                await self.cancel_own(customer, rng)
            elif roll < 0.55:
                await self.place(customer, rng, keyed=False)
            else:
                await self.place(customer, rng, keyed=True)

    def new_placement(self, customer: Account, rng: random.Random, keyed: bool) -> Placement:
        shop = rng.choice(self.shops)
        products = rng.sample(sorted(shop.products), rng.randint(1, min(3, len(shop.products))))
        lines = [(product_id, rng.randint(1, 3)) for product_id in products]
        tag = f"inv-{next(self.tags)}"
        placement = Placement(tag, customer, shop.market_id, lines, f"key-{tag}" if keyed else None)
        self.placements.append(placement)
        return placement

    async def post(self, placement: Placement, hub: int, *, quantity_bump: int = 0) -> tuple[int | None, Any]:
        """One attempt: (status, body); status None when the connection failed (body says how)."""
        lines = [(pid, qty + quantity_bump) for pid, qty in placement.lines]
        fields: dict[str, Any] = {"notes": placement.tag}
        if int(placement.tag.removeprefix("inv-")) % 5 == 0:
            fields.update(delivery_option="delivery", delivery_address="12 Khreshchatyk St, Kyiv")
        try:
            with self.using(hub) as http:
                response = await place_order(http, placement.customer, placement.market_id, lines,
                                             key=placement.key, **fields)  # fmt: skip
                async with response:
                    return response.status, await response.json()
        except aiohttp.ClientConnectorError:
            return None, "refused"  # never reached the hub: nothing happened
        except (aiohttp.ClientError, TimeoutError):
            return None, "lost"

    def record(self, placement: Placement, status: int | None, body: Any) -> None:
        if status in {200, 201}:
            placement.acks.append(body["id"])
            placement.codes.append(str(status))
            self.report.counts["orders_acknowledged" if status == 201 else "idempotent_replays"] += 1
            if body["id"] not in self.orders_of[placement.customer.id]:
                self.orders_of[placement.customer.id].append(body["id"])
            return
        if status is None:
            placement.codes.append(body)
            self.report.counts[f"requests_{body}"] += 1
            if body == "lost":
                placement.in_doubt = True
            return
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        placement.codes.append(f"{status} {code}")
        self.report.counts[f"order_refused_{code}"] += 1
        if code in DEFINITE_REFUSALS:
            placement.refused = True
        elif code in {"UNAVAILABLE", "IDEMPOTENCY_IN_PROGRESS"}:
            placement.in_doubt = True
        else:
            self.report.violation(f"{placement.tag}: unexpected answer {status} {body!r:.300}")

    async def place(self, customer: Account, rng: random.Random, *, keyed: bool) -> None:
        placement = self.new_placement(customer, rng, keyed)
        if not keyed:
            status, body = await self.post(placement, self.pick(rng))
            self.record(placement, status, body)
            return
        style = rng.random()
        if style < 0.3:  # racing duplicates, on either instance
            racers = rng.randint(2, 3)
            self.report.counts["key_races"] += 1
            answers = await asyncio.gather(*(self.post(placement, self.pick(rng)) for _ in range(racers)))
            for status, body in answers:
                self.record(placement, status, body)
        else:
            await self.post_until_definite(placement, rng)
        if placement.acks and style > 0.6:  # the same request again later: the same order
            status, body = await self.post(placement, self.pick(rng))
            self.record(placement, status, body)
        if placement.acks and style > 0.9:  # the same key with another body: refused, nothing placed
            status, body = await self.post(placement, self.pick(rng), quantity_bump=1)
            code = body.get("error", {}).get("code") if isinstance(body, dict) else body
            self.report.counts["key_mismatch_probes"] += 1
            if status is not None and code != "IDEMPOTENCY_MISMATCH":
                self.report.violation(f"{placement.tag}: another body with the same key answered {status} {code}")

    async def post_until_definite(self, placement: Placement, rng: random.Random) -> None:
        """A careful client with a key retries until it has an answer (on the other instance too)."""
        hub = self.pick(rng)
        for attempt in range(KEYED_ATTEMPTS):
            status, body = await self.post(placement, (hub + attempt) % len(self.hubs))
            self.record(placement, status, body)
            if status is not None and status != 503 and not _in_progress(body):
                return
            self.report.counts["keyed_retries"] += 1
            await asyncio.sleep(0.2)

    async def cancel_own(self, customer: Account, rng: random.Random) -> None:
        order_id = rng.choice(self.orders_of[customer.id])
        fields = {"expected_version": 1} if rng.random() < 0.5 else {}
        await self.patch(customer, order_id, OrderStatus.CANCELLED, rng, fields=fields, who="customer")

    async def patch(self, actor: Account, order_id: str, target: OrderStatus, rng: random.Random, *,
                    fields: dict[str, Any], who: str) -> None:  # fmt: skip
        try:
            with self.using(self.pick(rng)) as http:
                response = await set_order_status(http, actor, order_id, target.value, **fields)
                async with response:
                    status, body = response.status, await response.json()
        except aiohttp.ClientConnectorError:
            self.report.counts["requests_refused"] += 1
            return
        except (aiohttp.ClientError, TimeoutError):
            self.report.counts["requests_lost"] += 1
            return
        if status == 200:
            self.report.counts[f"{who}_moves_{target.value}"] += 1
            return
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        if status == 409 and code in {"INVALID_TRANSITION", "VERSION_CONFLICT"}:
            self.report.counts[f"{who}_moves_refused_{code}"] += 1
        elif status == 503:
            self.report.counts["moves_unavailable"] += 1
        else:
            self.report.violation(f"{who} move of {order_id} to {target}: unexpected {status} {body!r:.300}")

    async def market_admin(self, shop: Shop, index: int) -> None:
        rng = self.actor_rng(f"admin:{index}")
        while self.budget.take():
            status = rng.choice(["pending", "pending", "confirmed", "preparing", "ready", "out_for_delivery"])
            query = {"market_id": shop.market_id, "status": status, "limit": "50"}
            try:
                with self.using(self.pick(rng)) as http:
                    async with http.get("/api/v1/orders", params=query, headers=shop.admin.headers) as response:
                        listed = await response.json() if response.status == 200 else []
            except (aiohttp.ClientError, TimeoutError):
                listed = []
            if not listed:
                await asyncio.sleep(0.05)
                continue
            order = rng.choice(listed)
            choices = next_statuses(OrderStatus(order["status"]), MARKET_ACTOR, order["delivery_option"])
            forward = [target for target in choices if target is not OrderStatus.CANCELLED]
            target = rng.choice(forward) if forward and rng.random() < 0.8 else rng.choice(choices)
            fields = {"expected_version": order["version"]} if rng.random() < 0.5 else {}
            await self.patch(shop.admin, order["id"], target, rng, fields=fields, who="market")

    # Faults

    async def faults(self) -> None:
        rng = self.actor_rng("faults")
        http = aiohttp.ClientSession()
        try:
            shop = self.shops[0]
            auth = dashboard_auth(shop.admin, shop.market_id)
            self.stalled = await open_stalled_dashboard(http, self.hubs[0].url, auth)
            self.report.counts["stalled_clients"] += 1

            await self.budget.reached(0.2)
            await asyncio.to_thread(self.redis.stop)
            self.report.counts["fault_redis_stopped"] += 1
            await asyncio.sleep(1 + rng.random())
            await self.budget.reached(0.35)
            await asyncio.to_thread(self.redis.start)

            await self.budget.reached(0.55)
            victim = self.hubs[1]
            assert victim.process is not None
            if not self.config.kill_under_load:
                self.avoid = 1
                deadline = time.monotonic() + 20
                while self.in_flight[1] and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            victim.process.kill()  # SIGKILL: no drain, no cleanup, requests cut mid-way
            await asyncio.to_thread(victim.process.wait)
            victim.process = None
            self.report.counts["fault_hub_killed"] += 1
            await asyncio.sleep(0.5)
            await asyncio.to_thread(victim.start)
            self.avoid = None
        finally:
            await http.close()

    # The end

    async def settle(self) -> None:
        """Everything healed and quiet; then every follower asks for its stream's tail."""
        started = time.monotonic()
        for hub in self.hubs:
            await asyncio.to_thread(hub.wait_healthy, 30)
        await asyncio.sleep(1.5)  # emits still queued (e.g. after the Redis outage) go out
        db = connect(self.hubs[0].env["MONGODB_URL"], timeout_seconds=5)[self.db_name]
        try:
            # Events a killed instance left in order outboxes: the hubs' sweepers publish them once
            # they are OUTBOX_REPAIR_AFTER old. Left ones are reported by the checker.
            deadline = time.monotonic() + OUTBOX_REPAIR_AFTER.total_seconds() + CATCH_UP_SECONDS
            left = await db["orders"].count_documents({"outbox_ms": {"$exists": True}})
            self.report.counts["orders_with_events_left_at_settle"] = left
            while left and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                left = await db["orders"].count_documents({"outbox_ms": {"$exists": True}})
                if not left:
                    await asyncio.sleep(1.5)  # their emits go out
            for hub in self.hubs:
                log_text = hub.log_path.read_text(errors="replace") if hub.log_path.exists() else ""
                self.report.counts["outbox_repairs_by_sweepers"] += log_text.count("left-over order events published")
            log = EventLog(db, max_events=1000, max_age=timedelta(hours=24))
            counters = {f.stream: await log.current_seq(f.stream) for f in self.followers}
        finally:
            db.client.close()
        await asyncio.gather(*(f.catch_up(counters.get(f.stream, 0)) for f in self.followers))
        self.report.seconds["settle"] = time.monotonic() - started

    async def check(self) -> Report:
        started = time.monotonic()
        client = connect(self.hubs[0].env["MONGODB_URL"], timeout_seconds=10)
        try:
            store = Store(client[self.db_name])
            # What the sweeper of either hub does with interrupted placements once they are a minute old.
            clock, follow_up = SystemClock(), OrderFollowUp(store, publisher=None)
            status_changes = OrderStatusChanges(store, OrderReader(store), follow_up, clock=clock)
            sweeper = OrderSweeper(store, status_changes, follow_up, clock=clock, confirm_timeout=timedelta(minutes=15))
            repaired = await sweeper.repair_placements(older_than=timedelta(0))
            self.report.counts["placements_repaired"] = repaired
            await Checker(self, store).run()
        finally:
            client.close()
        self.report.seconds["check"] = time.monotonic() - started
        return self.report


def _in_progress(body: Any) -> bool:
    return isinstance(body, dict) and body.get("error", {}).get("code") == "IDEMPOTENCY_IN_PROGRESS"


class Checker:
    def __init__(self, workload: Workload, store: Store) -> None:
        self.workload = workload
        self.store = store
        self.report = workload.report
        self.orders: dict[str, dict[str, Any]] = {}

    async def run(self) -> None:
        market_ids = [shop.market_id for shop in self.workload.shops]
        db = self.store.db
        self.orders = {doc["_id"]: doc async for doc in db["orders"].find({"market_id": {"$in": market_ids}})}
        self.report.counts["orders_in_database"] = len(self.orders)
        self.report.counts["orders_cancelled"] = sum(o["status"] == "cancelled" for o in self.orders.values())
        await self.stock()
        self.outboxes()
        self.placements()
        self.state_paths()
        await self.counters()
        await self.streams()

    def live(self) -> Iterator[dict[str, Any]]:
        return (order for order in self.orders.values() if order["status"] != OrderStatus.CANCELLED.value)

    async def stock(self) -> None:
        ordered: Counter[str] = Counter()
        for order in self.live():
            for item in order["items"]:
                ordered[item["product_id"]] += item["quantity"]
        for shop in self.workload.shops:
            for product_id, initial in shop.products.items():
                product = await self.store.db["products"].find_one({"_id": product_id})
                assert product is not None
                if product["stock"] + ordered[product_id] != initial:
                    self.report.violation(f"product {product_id}: stock {product['stock']} + ordered "
                                          f"{ordered[product_id]} != initial {initial}")  # fmt: skip
                if product.get("holds"):
                    self.report.violation(f"product {product_id}: holds left {product['holds']}")
                if product["stock"] < 0:
                    self.report.violation(f"product {product_id}: negative stock {product['stock']}")

    def outboxes(self) -> None:
        unpublished = [order_id for order_id, order in self.orders.items() if order.get("outbox")]
        if unpublished:
            self.report.violation(f"orders with events never published: {unpublished[:20]}")

    def placements(self) -> None:
        by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for order in self.orders.values():
            by_tag[order.get("notes") or ""].append(order)
        asked = {placement.tag for placement in self.workload.placements}
        for tag, orders in by_tag.items():
            if tag not in asked:
                self.report.violation(f"orders nobody asked for: {[o['_id'] for o in orders]}")
        for placement in self.workload.placements:
            found = by_tag.get(placement.tag, [])
            ids = set(placement.acks)
            where = f"{placement.tag} (key={placement.key}, answers={placement.codes})"
            if len(found) > 1:
                self.report.violation(f"{where}: {len(found)} orders for one request")
            if len(ids) > 1:
                self.report.violation(f"{where}: answers named different orders {sorted(ids)}")
            if ids and {order["_id"] for order in found} != ids:
                self.report.violation(f"{where}: acknowledged {sorted(ids)}, stored {[o['_id'] for o in found]}")
            if not ids and found and not placement.in_doubt:
                self.report.violation(f"{where}: refused, yet order {found[0]['_id']} exists")
            if found and (found[0]["customer_id"], found[0]["market_id"]) != (placement.customer.id,
                                                                            placement.market_id):  # fmt: skip
                self.report.violation(f"{where}: stored for another customer or market")
            if not ids and placement.in_doubt:
                self.report.counts["requests_in_doubt_with_order" if found else "requests_in_doubt_without"] += 1

    def state_paths(self) -> None:
        for order in self.orders.values():
            history = [OrderStatus(change["status"]) for change in order["status_history"]]
            if history[0] is not OrderStatus.PENDING or order["version"] != len(history):
                self.report.violation(f"order {order['_id']}: version {order['version']}, history {history}")
            for source, target in itertools.pairwise(history):
                actors = frozenset(Actor)
                if not may_move(source, target, actors, order["delivery_option"]):
                    self.report.violation(f"order {order['_id']}: impossible move {source} -> {target}")
            if history[-1].value != order["status"]:
                self.report.violation(f"order {order['_id']}: status {order['status']} but history ends {history[-1]}")

    async def counters(self) -> None:
        for shop in self.workload.shops:
            market = await self.store.db["markets"].find_one({"_id": shop.market_id})
            assert market is not None
            mine = [order for order in self.live() if order["market_id"] == shop.market_id]
            recount = (len(mine), sum(order["total_cents"] for order in mine))
            stored = (market["total_orders"], market["total_revenue_cents"])
            if recount != stored:
                self.report.violation(f"market {shop.market_id}: counters {stored} != recount {recount}")

    async def streams(self) -> None:
        db = self.store.db
        for follower in self.workload.followers:
            current = await EventLog(db, max_events=1000, max_age=timedelta(hours=24)).current_seq(follower.stream)
            stored = sorted([doc["seq"] async for doc in db["event_history"].find({"stream": follower.stream})])
            if stored != list(range(1, current + 1)):
                missing = sorted(set(range(1, current + 1)) - set(stored))
                self.report.violation(f"{follower.stream}: history lacks seqs {missing[:20]} of 1..{current}")
            seqs = [event["seq"] for event in follower.applied]
            self.report.counts["events_applied"] += len(seqs)
            if seqs != list(range(1, current + 1)):
                self.report.violation(f"{follower.label}: applied {len(seqs)} events, not exactly 1..{current}; "
                                      f"missing {sorted(set(range(1, current + 1)) - set(seqs))[:20]}")  # fmt: skip
            self.match_database(follower)

    def match_database(self, follower: StreamFollower) -> None:
        seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in follower.applied:
            seen[event["order"]["id"]].append(event)
        expected = {order_id for order_id, order in self.orders.items() if follower.owner(order_as_event(order))}
        if set(seen) != expected:
            self.report.violation(f"{follower.label}: saw orders {len(seen)}, database has {len(expected)}; "
                                  f"unseen {sorted(expected - set(seen))[:5]}, "
                                  f"unknown {sorted(set(seen) - expected)[:5]}")  # fmt: skip
        for order_id, events in seen.items():
            order = self.orders.get(order_id)
            if order is None:
                continue
            names = [event["event"] for event in events]
            versions = [event["order"]["version"] for event in events]
            if names != ["order:created"] + ["order:updated"] * (order["version"] - 1) or versions != list(
                range(1, order["version"] + 1)
            ):
                seen_versions = list(zip(names, versions, strict=True))
                self.report.violation(f"{follower.label}: order {order_id} events {seen_versions}"
                                      f" for version {order['version']}")  # fmt: skip
            elif events[-1]["order"]["status"] != order["status"]:
                self.report.violation(f"{follower.label}: order {order_id} last seen {events[-1]['order']['status']}, "
                                      f"stored {order['status']}")  # fmt: skip


def order_as_event(order: dict[str, Any]) -> dict[str, Any]:
    return {"id": order["_id"], "market_id": order["market_id"], "customer_id": order["customer_id"]}


async def run_workload(config: Config, *, mongo_url: str, log_dir: Path, db_name: str | None = None) -> Report:
    """Start a private Redis and two hubs, run the workload with its faults, check, stop everything."""
    redis = RedisServer().start()
    fleet = HubFleet(mongo_url, log_dir)
    workload = Workload(config, fleet, redis, db_name or f"inv_{uuid.uuid4().hex[:12]}")
    try:
        await workload.start()
        await workload.run()
        await workload.settle()
        report = await workload.check()
        if report.violations:
            for hub in workload.hubs:
                report.violation(f"hub {hub.port} log tail:\n{hub.tail(15)}")
        return report
    finally:
        await workload.close()
        await asyncio.to_thread(fleet.stop_all)
        redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.invariants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--markets", type=int, default=4)
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--products", type=int, default=4, help="products per market")
    parser.add_argument("--max-seconds", type=float, default=600, help="bound on the operation phase")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--kill-idle", action="store_true",
                        help="take instance B out of rotation and kill it with nothing in flight")  # fmt: skip
    args = parser.parse_args(argv)
    config = Config(seed=args.seed, customers=args.customers, markets=args.markets, operations=args.operations,
                    products_per_market=args.products, max_seconds=args.max_seconds, faults=not args.no_faults,
                    kill_under_load=not args.kill_idle)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="invariants-") as scratch:
        nx: NxServer | None = None
        mongo_url = os.environ.get("MONGODB_URL")
        if not mongo_url:
            nx = NxServer(Path(scratch) / "nx")
            nx.start()
            mongo_url = nx.url
        try:
            report = asyncio.run(run_workload(config, mongo_url=mongo_url, log_dir=Path(scratch)))
        finally:
            if nx is not None:
                nx.stop()
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
