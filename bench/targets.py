"""Benchmark targets: what is started, where clients connect, and how an order event is produced.

A target owns its server processes. The runner (``bench/run.py``) only needs:

* ``start()`` / ``stop()``;
* ``endpoints`` -- base URLs of the instances; clients are spread round-robin over them, and emits go
  to ``endpoints[0]`` ("instance A"), so every other instance measures the cross-instance (Redis) path;
* ``server_pids()`` -- for RSS/CPU sampling;
* ``auth_for(i, market_id)`` -- the Socket.IO ``auth`` payload of client ``i``;
* ``prepare(session, markets)`` -- optional set-up (users, markets, products, tokens) before clients connect;
* ``emit(session, market_id)`` -- cause one ``order:created`` in ``market:{market_id}`` and return the
  order id with the wall-clock time taken just before the request was sent.

``BaselineTarget`` is the bare python-socketio + AsyncRedisManager server (``bench/baseline_server.py``).
``HubTarget`` is the real hub: nx-27017 + ``python -m hub`` instances sharing Redis; ``prepare`` creates
users (directly in the database, one precomputed password hash), markets and products (over REST), and
mints JWTs with the SECRET_KEY it gave the hubs; ``emit`` places an order with ``POST /api/v1/orders``.

``prepare`` may replace the runner's market labels by real market ids: ``market_ids`` maps label -> id
(the identity for the baseline); ``auth_for`` and ``emit`` take the label.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bench.orders import PRODUCTS, make_order

LOOPBACK = "127.0.0.1"


async def stop_processes(procs: list[subprocess.Popen[bytes]], *, grace_s: float) -> None:
    """SIGTERM them all, wait up to `grace_s` each, then SIGKILL whatever is left."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            await asyncio.to_thread(p.wait, grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


@dataclass(frozen=True)
class EmitOutcome:
    order_id: str
    market_id: str
    sent_at: float
    ok: bool
    status: int
    rtt_ms: float
    error: str | None = None


class Target(Protocol):
    name: str
    namespace: str

    @property
    def endpoints(self) -> list[str]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def server_pids(self) -> list[int]: ...

    def auth_for(self, index: int, market_id: str) -> dict[str, Any]: ...

    async def prepare(self, session: aiohttp.ClientSession, markets: list[str]) -> None: ...

    async def emit(self, session: aiohttp.ClientSession, market_id: str) -> EmitOutcome: ...

    def aux_pids(self) -> dict[str, int]: ...


def redis_server_pid(redis_url: str) -> int | None:
    """The pid of the loopback redis-server serving ``redis_url`` (for CPU sampling), if visible."""
    port = redis_url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[-1]
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if (proc.info.get("name") or "").startswith("redis-server") and f":{port}" in cmd:
            return int(proc.pid)
    return None


class _Identity(dict[str, str]):
    """label -> market id for targets whose labels are the ids."""

    def __missing__(self, key: str) -> str:
        return key


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


async def wait_http_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a server process with stdout/stderr going to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


class BaselineTarget:
    """N bare baseline_server.py instances on free loopback ports sharing one Redis channel."""

    name = "baseline"
    namespace = "/dashboard"

    def __init__(
        self,
        *,
        instances: int = 2,
        redis_url: str = "redis://127.0.0.1:6379/9",
        channel: str | None = None,
        uvloop: bool = True,
    ) -> None:
        self.instances = instances
        self.redis_url = redis_url
        self.channel = channel or f"bench-baseline-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.uvloop = uvloop
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.logdir = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
        self._rng = random.Random(7)

    @property
    def endpoints(self) -> list[str]:
        return [f"http://{LOOPBACK}:{p}" for p in self.ports]

    async def start(self) -> None:
        script = Path(__file__).with_name("baseline_server.py")
        for i in range(self.instances):
            port = free_port()
            cmd = [
                sys.executable,
                str(script),
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--redis-url",
                self.redis_url,
                "--channel",
                self.channel,
            ]
            if not self.uvloop:
                cmd.append("--no-uvloop")
            self.procs.append(_spawn(cmd, self.logdir / f"server-{i}.log"))
            self.ports.append(port)
        for port, proc in zip(self.ports, self.procs, strict=True):
            await wait_http_ok(f"http://{LOOPBACK}:{port}/health", proc)

    async def stop(self) -> None:
        await stop_processes(self.procs, grace_s=10)

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def aux_pids(self) -> dict[str, int]:
        pid = redis_server_pid(self.redis_url)
        return {"redis-server": pid} if pid else {}

    def auth_for(self, index: int, market_id: str) -> dict[str, Any]:
        return {"token": f"bench-{index}", "market_id": market_id}

    @property
    def market_ids(self) -> dict[str, str]:
        return _Identity()

    async def prepare(self, session: aiohttp.ClientSession, markets: list[str], clients: int = 0) -> None:
        return None

    async def emit(self, session: aiohttp.ClientSession, market_id: str) -> EmitOutcome:
        order = make_order(market_id, self._rng)
        body = {"market_id": market_id, "order": order}
        sent_at = time.time()
        t0 = time.perf_counter()
        try:
            async with session.post(f"{self.endpoints[0]}/emit", json=body) as resp:
                await resp.read()
                ok = resp.status == 200
                status = resp.status
            err = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, status, err = False, 0, type(exc).__name__
        return EmitOutcome(
            order["id"],
            market_id,
            sent_at,
            ok,
            status,
            (time.perf_counter() - t0) * 1000.0,
            err,
        )


class HubTarget:
    """Two (``instances``) ``python -m hub`` processes (uvloop) on one nx-27017 and the shared Redis.

    As the operator of this benchmark deployment it writes users straight into the database (one
    precomputed argon2 hash: a REST sign-up costs ~0.25 s of CPU each) and signs their tokens with the
    SECRET_KEY it gave the hubs. Markets and products go through REST. Dashboard client ``i`` is its
    own super_admin with ``auth.market_id``; orders are placed by a few customers on instance A.
    """

    name = "hub"
    namespace = "/dashboard"
    customers = 8
    products_per_market = 6

    def __init__(
        self,
        *,
        instances: int = 2,
        redis_url: str = "redis://127.0.0.1:6379/9",
        channel: str | None = None,
        uvloop: bool = True,
        extra_env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.command = command or [sys.executable, "-m", "hub"]
        self.instances = instances
        self.redis_url = redis_url
        self.channel = channel or f"bench-hub-{tag}"
        self.uvloop = uvloop
        self.extra_env = extra_env or {}
        self.db_name = f"bench_{tag.replace('-', '_')}"
        self.secret = uuid.uuid4().hex + uuid.uuid4().hex
        self.logdir = Path(tempfile.mkdtemp(prefix="bench-hub-"))
        self.mongo: Any = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.market_ids: dict[str, str] = {}
        self._products: dict[str, list[str]] = {}
        self._dashboard_tokens: list[str] = []
        self._customer_tokens: list[str] = []
        self._rng = random.Random(7)
        self._turn = 0

    @property
    def endpoints(self) -> list[str]:
        return [f"http://{LOOPBACK}:{p}" for p in self.ports]

    def env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "REDIS_", "RATE_LIMIT_"))}
        env.update(
            {
                "MONGODB_URL": self.mongo.url,
                "MONGODB_DB": self.db_name,
                "SECRET_KEY": self.secret,
                "REDIS_URL": self.redis_url,
                "REDIS_CHANNEL": self.channel,
                "HOST": LOOPBACK,
                "PORT": str(port),
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_MINUTE": str(10**9),
                "RATE_LIMIT_PER_HOUR": str(10**9),
                "RATE_LIMIT_KEY_PREFIX": f"bench-{self.channel}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    async def start(self) -> None:
        from store.embedded import EmbeddedMongo

        self.mongo = EmbeddedMongo(self.logdir / "db")
        await self.mongo.start()
        root = Path(__file__).resolve().parent.parent
        for i in range(self.instances):
            port = free_port()
            with open(self.logdir / f"hub-{i}.log", "wb") as log:
                proc = subprocess.Popen(
                    self.command, env=self.env(port), cwd=root, stdout=log, stderr=subprocess.STDOUT
                )
            self.procs.append(proc)
            self.ports.append(port)
        for port, proc in zip(self.ports, self.procs, strict=True):
            await wait_http_ok(f"http://{LOOPBACK}:{port}/health", proc, timeout=60)

    async def stop(self) -> None:
        await stop_processes(self.procs, grace_s=15)
        if self.mongo is not None:
            await self.mongo.stop()
            # the database is this run's only; the logs stay in logdir
            shutil.rmtree(self.logdir / "db", ignore_errors=True)

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def aux_pids(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        if self.mongo is not None and self.mongo.process is not None:
            pids["nx-27017"] = self.mongo.process.pid
        redis_pid = redis_server_pid(self.redis_url)
        if redis_pid:
            pids["redis-server"] = redis_pid
        return pids

    def auth_for(self, index: int, market_id: str) -> dict[str, Any]:
        return {"token": self._dashboard_tokens[index], "market_id": self.market_ids[market_id]}

    async def prepare(self, session: aiohttp.ClientSession, markets: list[str], clients: int = 0) -> None:
        from datetime import timedelta

        from auth.passwords import hash_password
        from auth.tokens import TokenIssuer
        from store.client import connect
        from store.models import Role
        from store.users import Users

        issuer = TokenIssuer(self.secret, "HS256", timedelta(hours=3))
        password_hash = hash_password(uuid.uuid4().hex)
        client = connect(self.mongo.url, timeout_seconds=10)
        users = Users(client[self.db_name])
        sem = asyncio.Semaphore(32)

        async def user(kind: str, i: int, role: Role) -> str:
            async with sem:
                record = await users.insert(
                    email=f"{kind}-{i}@bench.example", name=f"{kind} {i}", password_hash=password_hash, role=role
                )
            return issuer.issue(record.id, role.value)

        try:
            owners = await asyncio.gather(*(user("owner", i, Role.MARKET_ADMIN) for i in range(len(markets))))
            self._customer_tokens = list(
                await asyncio.gather(*(user("customer", i, Role.CUSTOMER) for i in range(self.customers)))
            )
            self._dashboard_tokens = list(
                await asyncio.gather(*(user("dashboard", i, Role.SUPER_ADMIN) for i in range(clients)))
            )
        finally:
            client.close()
        api = f"{self.endpoints[0]}/api/v1"
        for label, owner in zip(markets, owners, strict=True):
            headers = {"Authorization": f"Bearer {owner}"}
            market = {"name": f"Bench {label}", "contact_email": f"{label}@bench.example", "address": "Loopback 1"}
            async with session.post(f"{api}/markets", json=market, headers=headers) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"POST /markets: {resp.status} {await resp.text()}")
                market_id = str((await resp.json())["id"])
            self.market_ids[label] = market_id
            self._products[market_id] = []
            for name, price in PRODUCTS[: self.products_per_market]:
                product = {"market_id": market_id, "name": name, "price_cents": price, "stock": 10**9}
                async with session.post(f"{api}/products", json=product, headers=headers) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"POST /products: {resp.status} {await resp.text()}")
                    self._products[market_id].append(str((await resp.json())["id"]))

    def order_body(self, market_label: str) -> tuple[str, dict[str, Any]]:
        market_id = self.market_ids[market_label]
        picks = self._rng.sample(self._products[market_id], self._rng.randint(2, 3))
        items = [{"product_id": pid, "quantity": self._rng.randint(1, 5)} for pid in picks]
        body = {"market_id": market_id, "items": items, "delivery_option": "pickup", "payment_method": "cash"}
        return market_id, body

    async def emit(self, session: aiohttp.ClientSession, market_id: str) -> EmitOutcome:
        real_id, body = self.order_body(market_id)
        token = self._customer_tokens[self._turn % len(self._customer_tokens)]
        self._turn += 1
        headers = {"Authorization": f"Bearer {token}"}
        sent_at = time.time()
        t0 = time.perf_counter()
        order_id, err = "", None
        try:
            async with session.post(f"{self.endpoints[0]}/api/v1/orders", json=body, headers=headers) as resp:
                status = resp.status
                data = await resp.json(content_type=None)
                ok = status == 201
                if ok:
                    order_id = str(data["id"])
                else:
                    err = str((data or {}).get("error", {}).get("code"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            ok, status, err = False, 0, type(exc).__name__
        return EmitOutcome(order_id, real_id, sent_at, ok, status, (time.perf_counter() - t0) * 1000.0, err)


TARGETS: dict[str, Callable[..., Target]] = {"baseline": BaselineTarget, "hub": HubTarget}
