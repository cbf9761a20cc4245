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
A ``HubTarget`` for the real hub would start ``python -m hub`` instances with ``REDIS_URL`` set, create a
market admin + market + products in ``prepare``, authenticate with JWTs in ``auth_for`` and emit by
``POST /orders`` as a customer; register it in ``TARGETS``.
"""

from __future__ import annotations

import asyncio
import os
import random
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

from bench.orders import make_order

LOOPBACK = "127.0.0.1"


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
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                await asyncio.to_thread(p.wait, 10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def auth_for(self, index: int, market_id: str) -> dict[str, Any]:
        return {"token": f"bench-{index}", "market_id": market_id}

    async def prepare(self, session: aiohttp.ClientSession, markets: list[str]) -> None:
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


TARGETS: dict[str, Callable[..., Target]] = {"baseline": BaselineTarget}
