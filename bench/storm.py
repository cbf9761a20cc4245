"""Reconnect storm: every client of instance B comes to instance A at once, and catches up.

Clients are lean websocket Socket.IO clients (bench/loadgen.py's SioClient) with the JS client's
reconnection behaviour: after their connection ends they wait a randomized backoff
(`reconnectionDelay` 500 ms, `reconnectionDelayMax` 5 s, `randomizationFactor` 0.5, as static/js/live.js
sets them) and connect to A with `auth.since` = the last seq they applied per stream; a refused or
failed attempt backs off again, twice as long. The load balancer's failover is modelled by
reconnecting to A directly.

Used by tests/realtime/test_reconnect_storm.py (a few hundred clients) and by the command line (the bench):

    python -m bench.storm --clients 3000 --signal TERM     # and --signal KILL

which starts nx-27017 and two hubs (bench/targets.py HubTarget), connects `--clients` dashboards to B
and `--on-a` to A, places orders on A all along, stops B, and reports: time until all are back, A's
peak CPU and RSS, the latency of A's own clients before and during the storm, and whether every
client ended with every event exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from bench.loadgen import ClientSpec, ConnectFailedError, Histogram, Recorder, SioClient, WorkerPool

NAMESPACE = "/dashboard"
MAX_ORDERS_IN_FLIGHT = 50


@dataclass(frozen=True)
class Backoff:
    """socket.io-client's Backoff: min(max, base * 2**attempt), spread by +-factor."""

    base_s: float = 0.5
    max_s: float = 5.0
    factor: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        plain = min(self.max_s, self.base_s * 2**attempt)
        return plain * (1 - self.factor + 2 * self.factor * rng.random())


@dataclass
class StormClient:
    """One client: connected to `first`, reconnects to `fallback` whenever its connection ends."""

    index: int
    first: str
    fallback: str
    namespace: str
    auth: dict[str, Any]
    recorder: Recorder
    backoff: Backoff
    rng: random.Random
    last_seq: dict[str, int] = field(default_factory=dict)
    holes: dict[str, set[int]] = field(default_factory=dict)
    connected_to: str | None = None
    disconnected_at: float | None = None
    back_after_s: list[float] = field(default_factory=list)
    attempts: int = 0
    busy_refusals: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        url, failures = self.first, 0
        while not stop.is_set():
            auth = {**self.auth, "since": dict(self.last_seq)} if self.last_seq else dict(self.auth)
            client = SioClient(ClientSpec(url, 0, auth), self.namespace, self.recorder)
            client.last_seq, client.holes = self.last_seq, self.holes
            self.attempts += 1
            try:
                await client.connect(session, 30.0, False)
            except ConnectFailedError as exc:
                self.busy_refusals += '"busy"' in str(exc)
                await asyncio.sleep(self.backoff.delay(failures, self.rng))
                failures, url = failures + 1, self.fallback
                continue
            failures, self.connected_to = 0, url
            if self.disconnected_at is not None:
                self.back_after_s.append(time.monotonic() - self.disconnected_at)
            self.connected.set()
            listening = asyncio.ensure_future(client.listen())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([listening, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                listening.cancel()
                await client.close()
                return
            self.connected.clear()
            self.connected_to, self.disconnected_at, url = None, time.monotonic(), self.fallback
            await client.close()
            await asyncio.sleep(self.backoff.delay(0, self.rng))


def exactly_once_problems(clients: Sequence[StormClient], expected: dict[str, int]) -> list[str]:
    """Per client (a market's dashboard): the last seq of its market's stream must be the number of
    events published there, with no hole left (duplicates are counted by the Recorder)."""
    problems = []
    for client in clients:
        stream = f"market:{client.auth['market_id']}"
        last, got = expected.get(stream, 0), client.last_seq.get(stream, 0)
        if got != last or client.holes.get(stream):
            problems.append(f"client {client.index}: {stream} at {got} of {last}, holes {client.holes.get(stream)}")
    return problems


class ProcessSampler:
    """CPU % and RSS of one process, sampled from /proc every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float, int]] = []  # (monotonic, cpu %, rss bytes)
        self._task: asyncio.Task[None] | None = None

    def _read(self) -> tuple[float, int]:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = (int(fields[11]) + int(fields[12])) / ticks
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        return cpu_s, rss

    async def _run(self) -> None:
        last_t, (last_cpu, _) = time.monotonic(), self._read()
        while True:
            await asyncio.sleep(self.interval)
            now, (cpu, rss) = time.monotonic(), self._read()
            self.samples.append((now, 100.0 * (cpu - last_cpu) / (now - last_t), rss))
            last_t, last_cpu = now, cpu

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def peak(self, since: float, until: float) -> dict[str, float]:
        window = [(cpu, rss) for t, cpu, rss in self.samples if since <= t <= until] or [(0.0, 0)]
        return {"cpu_pct": round(max(c for c, _ in window), 1), "rss_mb": round(max(r for _, r in window) / 2**20, 1)}


async def place_orders(
    emit: Callable[[str], Awaitable[tuple[str, float, bool]]], markets: Sequence[str], rate: float, *,
    stop: asyncio.Event, sent_at: dict[str, float], counts: dict[str, int],
) -> None:  # fmt: skip
    """`rate` orders a second on A, round-robin over the markets, until `stop`. Each order is a task of its
    own (at most MAX_ORDERS_IN_FLIGHT), so a slow answer during the storm does not lower the rate (and the
    latency sample of A's clients stays large)."""
    in_flight: set[asyncio.Future[None]] = set()

    async def one(market: str) -> None:
        try:
            order_id, at, ok = await emit(market)
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The order may exist all the same: the exactly-once check can then report a false hole.
            print(f"order on {market} failed: {exc!r}", file=sys.stderr)
            return
        if ok:
            sent_at[order_id] = at
            counts[market] = counts.get(market, 0) + 1

    turn, next_at = 0, time.monotonic()
    while not stop.is_set():
        if len(in_flight) < MAX_ORDERS_IN_FLIGHT:
            task = asyncio.ensure_future(one(markets[turn % len(markets)]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            turn += 1
        next_at += 1 / rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*in_flight, return_exceptions=True)


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from bench.targets import HubTarget

    extra = {"SOCKET_HANDSHAKE_CONCURRENCY": str(args.handshakes)} if args.handshakes else {}
    load_start = os.getloadavg()[0]
    target = HubTarget(instances=2, extra_env=extra)
    markets = [f"m{i}" for i in range(args.markets)]
    await target.start()
    print(f"hub logs: {target.logdir}", file=sys.stderr)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
    pool: WorkerPool | None = None
    try:
        await target.prepare(session, markets, clients=1)
        a_url, b_url = target.endpoints
        recorder, rng, backoff = Recorder(), random.Random(args.seed), Backoff()

        def auth(index: int) -> dict[str, Any]:
            return target.auth_for(0, markets[index % len(markets)])

        # A's own clients live in a process of their own: their latency is not the storm clients' loop's.
        pool = WorkerPool([ClientSpec(a_url, 0, auth(i)) for i in range(args.on_a)], 1)
        await pool.start()
        await pool.connect()
        on_b = [StormClient(i, b_url, a_url, NAMESPACE, auth(i), recorder, backoff, rng) for i in range(args.clients)]
        stop_clients, stop_orders = asyncio.Event(), asyncio.Event()
        gate = asyncio.Semaphore(64)

        async def start(client: StormClient) -> asyncio.Task[None]:
            async with gate:
                task = asyncio.ensure_future(client.run(session, stop_clients))
                await asyncio.wait_for(client.connected.wait(), 120)
                return task

        tasks = list(await asyncio.gather(*(start(c) for c in on_b)))
        server, clients_process = ProcessSampler(target.procs[0].pid), ProcessSampler(os.getpid())
        server.start()
        clients_process.start()
        created_at: dict[str, float] = {}

        async def emit(market: str) -> tuple[str, float, bool]:
            """An order on A, as target.emit places it, keeping the server's `created_at`."""
            _, body = target.order_body(market)
            token = target._customer_tokens[len(created_at) % len(target._customer_tokens)]
            sent = time.time()
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(f"{a_url}/api/v1/orders", json=body, headers=headers) as response:
                if response.status != 201:
                    return "", sent, False
                order = await response.json()
            created_at[order["id"]] = datetime.fromisoformat(order["created_at"]).timestamp()
            return str(order["id"]), sent, True

        sent_at: dict[str, float] = {}
        counts: dict[str, int] = {}
        ordering = place_orders(emit, markets, args.rate, stop=stop_orders, sent_at=sent_at, counts=counts)
        orders = asyncio.ensure_future(ordering)
        await asyncio.sleep(args.warm)
        before = await pool.phase_result(created_at)
        storm_start = time.monotonic()
        target.procs[1].send_signal(signal.SIGTERM if args.signal == "TERM" else signal.SIGKILL)
        give_up = storm_start + args.deadline
        while any(c.connected_to != a_url for c in on_b) and time.monotonic() < give_up:
            await asyncio.sleep(0.05)
        all_back = all(c.connected_to == a_url for c in on_b)
        all_back_s = time.monotonic() - storm_start
        during = await pool.phase_result(created_at)
        await asyncio.sleep(args.after)
        stop_orders.set()
        await orders
        expected = {f"market:{target.market_ids[m]}": n for m, n in counts.items()}
        deadline = time.monotonic() + (60 if all_back else 0)
        while exactly_once_problems(on_b, expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        problems = exactly_once_problems(on_b, expected)
        after = await pool.phase_result(created_at)
        # Connections A counts as open against those the clients hold: more on A means handshakes of clients
        # that had already left were completed (leaked sessions); storage errors mean limits failed open.
        async with session.get(f"{a_url}/metrics") as response:
            a_metrics = _metric_sums(await response.text())
        stop_clients.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()
        await clients_process.stop()
        back = sorted(s for c in on_b for s in c.back_after_s)
        a_dups = sum(phase["duplicates"] for phase in (before, during, after))
        a_missing = after["still_missing"]
        return {
            "clients_on_b": args.clients, "clients_on_a": args.on_a, "signal": args.signal, "markets": args.markets,
            "orders": sum(counts.values()), "handshake_concurrency": args.handshakes or 16,
            "all_back_s": round(all_back_s, 2) if all_back else None,
            "on_a_at_deadline": None if all_back else sum(c.connected_to == a_url for c in on_b),
            "attempts": sum(c.attempts for c in on_b),
            "reconnect_s": {"p50": _pct(back, 0.5), "p99": _pct(back, 0.99), "max": _pct(back, 1.0)},
            "busy_refusals": sum(c.busy_refusals for c in on_b),
            "a_server_before_storm": server.peak(storm_start - args.warm, storm_start),
            "a_server_peak_during_storm": server.peak(storm_start, storm_start + all_back_s + 1),
            "storm_clients_process_peak": clients_process.peak(storm_start, storm_start + all_back_s + 1),
            "a_clients_delivery_ms_before": _latency(before),
            "a_clients_delivery_ms_during": _latency(during),
            "a_connections_counted_at_end": a_metrics.get("hub_socketio_connections", 0),
            "clients_connected_at_end": args.on_a + sum(c.connected_to == a_url for c in on_b),
            "a_rate_limit_storage_errors": a_metrics.get("hub_rate_limit_storage_errors_total", 0),
            "a_handshakes_waiting_at_end": a_metrics.get("hub_socketio_handshakes_waiting", 0),
            "a_rss_mb_at_end": round(server.samples[-1][2] / 2**20, 1) if server.samples else None,
            "load_average_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
            "duplicates": recorder.duplicates + a_dups,
            "exactly_once": not problems and recorder.duplicates + a_dups == 0 and a_missing == 0,
            "problems": problems[:10],
        }  # fmt: skip
    finally:
        if pool is not None:
            pool.terminate()
        await session.close()
        await target.stop()


def _latency(phase: dict[str, Any]) -> dict[str, float | int | None]:
    """Latency of A's clients in one phase: receive time - the order's created_at (server clock)."""
    histogram: Histogram = phase["latency_hists"].get(0, Histogram())
    return histogram.summary()


def _metric_sums(exposition: str) -> dict[str, float]:
    """Per metric sample name, the sum over its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + float(sample.value)
    return sums


def _pct(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(p * len(values)))], 2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=3000, help="dashboards on instance B")
    parser.add_argument("--on-a", type=int, default=100, help="dashboards on instance A (their latency is measured)")
    parser.add_argument("--markets", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="orders a second, placed on A throughout")
    parser.add_argument("--signal", choices=("TERM", "KILL"), default="TERM")
    parser.add_argument("--warm", type=float, default=5.0, help="seconds of orders before B is stopped")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds after the signal to stop waiting")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of orders after all are back")
    parser.add_argument("--handshakes", type=int, default=0, help="SOCKET_HANDSHAKE_CONCURRENCY on the hubs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    async def guarded() -> dict[str, Any]:
        # SIGTERM (e.g. `timeout`) cancels the run, so _bench's finally stops the hubs and nx-27017 it started
        task = asyncio.current_task()
        if task is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await _bench(args)

    try:
        result = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; all started processes were stopped", file=sys.stderr)
        sys.exit(130)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
