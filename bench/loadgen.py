"""Lean Socket.IO load generator: Engine.IO v4 / Socket.IO v5 spoken directly over aiohttp websockets.

Each client opens ``/socket.io/?EIO=4&transport=websocket``, reads the open packet ``0{...}``, answers
pings (``2`` -> ``3``), connects to a namespace with ``40/ns,{auth}`` and waits for ``40/ns,{"sid"}``
(or records the ``44/ns,{...}`` connect_error). Then it parses ``42/ns,["event",{...}]`` packets and records
per event: name, stream, seq, order id and receive time (``time.time()``), keeping stream -> last seq per
client to count duplicates and gaps. Event acks (``42/ns,7[...]``) are answered with ``43/ns,7[]``.

Use it as a library:

* :func:`run_clients` -- all clients in the current event loop for ``duration_s``;
* :class:`WorkerPool` -- clients split over K processes (each its own uvloop loop) that report compact
  aggregates through a pipe: counts, latency histograms computed against the send times passed in at the
  end, and per-order first/last receipt.

or from the command line (connect, listen for a while, print the aggregates as JSON)::

    python -m bench.loadgen --url http://127.0.0.1:8101 --url http://127.0.0.1:8102 -n 200 --workers 2 \
        --market m1 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import resource
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson

# ---------------------------------------------------------------------------------------------------------
# Latency histogram: log buckets with 1 % relative width (values in milliseconds), mergeable and compact.

_LOG_BASE = math.log(1.01)
_MIN_MS = 0.001


class Histogram:
    """Log-bucketed histogram (1 % precision) with exact count/min/max/sum."""

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, value_ms: float) -> None:
        v = max(_MIN_MS, value_ms)
        idx = int(math.log(v / _MIN_MS) / _LOG_BASE)
        self.buckets[idx] = self.buckets.get(idx, 0) + 1
        self.count += 1
        self.total += value_ms
        self.min = min(self.min, value_ms)
        self.max = max(self.max, value_ms)

    def merge(self, other: Histogram) -> None:
        for k, n in other.buckets.items():
            self.buckets[k] = self.buckets.get(k, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * p / 100.0))
        seen = 0
        for idx in sorted(self.buckets):
            seen += self.buckets[idx]
            if seen >= rank:
                mid = _MIN_MS * math.exp((idx + 0.5) * _LOG_BASE)
                return min(max(mid, self.min), self.max)
        return self.max

    def summary(self) -> dict[str, float | int | None]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 2)

        return {
            "count": self.count,
            "mean_ms": r(self.total / self.count) if self.count else None,
            "min_ms": r(self.min) if self.count else None,
            "p50_ms": r(self.percentile(50)),
            "p90_ms": r(self.percentile(90)),
            "p99_ms": r(self.percentile(99)),
            "max_ms": r(self.max) if self.count else None,
        }

    def to_wire(self) -> dict[str, Any]:
        return {
            "b": self.buckets,
            "n": self.count,
            "t": self.total,
            "lo": self.min if self.count else None,
            "hi": self.max,
        }

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Histogram:
        h = cls()
        h.buckets = {int(k): int(v) for k, v in d["b"].items()}
        h.count = int(d["n"])
        h.total = float(d["t"])
        h.min = math.inf if d["lo"] is None else float(d["lo"])
        h.max = float(d["hi"])
        return h


# ---------------------------------------------------------------------------------------------------------
# Per-process recording

# Only these are deliveries: `stats` and other pushes are counted in by_event, never as deliveries.
ORDER_EVENT_NAMES = frozenset({"order:created", "order:updated"})


@dataclass(frozen=True)
class ClientSpec:
    """One simulated client: base URL (http://127.0.0.1:P), its group (server index) and its auth payload."""

    url: str
    group: int
    auth: dict[str, Any]


@dataclass
class Recorder:
    """Aggregates everything the clients of one process see."""

    received: int = 0
    order_events: int = 0  # order:created / order:updated only (not stats), duplicates excluded
    by_event: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    out_of_order: int = 0
    gaps: int = 0
    missing_in_gaps: int = 0
    binary_packets: int = 0
    acks_sent: int = 0
    pings: int = 0
    parse_errors: int = 0
    # group -> order id -> receive times (time.time())
    recv_times: defaultdict[int, defaultdict[str, array[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: array("d")))
    )

    def reset(self) -> None:
        """Start counting afresh (between load phases on the same connections)."""
        self.__init__()  # type: ignore[misc]

    def on_event(self, client: SioClient, name: str, payload: Any, t: float) -> None:
        """Record one event received by ``client`` (which keeps its per-stream last seq and holes).

        A seq above last + 1 is a gap (its skipped seqs become holes); a seq below last that fills a
        hole is a late (out-of-order) delivery and still counts as delivered; anything else already
        seen is a duplicate and is not counted again.
        """
        self.received += 1
        self.by_event[name] += 1
        if not isinstance(payload, dict):
            return
        stream = payload.get("stream")
        seq = payload.get("seq")
        if isinstance(stream, str) and isinstance(seq, int):
            last_seq, holes = client.last_seq, client.holes
            last = last_seq.get(stream)
            if last is not None:
                if seq <= last:
                    hs = holes.get(stream)
                    if hs is None or seq not in hs:
                        self.duplicates += 1
                        return
                    hs.discard(seq)
                    self.out_of_order += 1
                else:
                    if seq > last + 1:
                        self.gaps += 1
                        self.missing_in_gaps += seq - last - 1
                        holes.setdefault(stream, set()).update(range(last + 1, seq))
                    last_seq[stream] = seq
            else:
                last_seq[stream] = seq
        if name not in ORDER_EVENT_NAMES:
            return
        self.order_events += 1
        order = payload.get("order")
        if isinstance(order, dict):
            oid = order.get("id")
            if isinstance(oid, str):
                self.recv_times[client.group][oid].append(t)


class ConnectFailedError(Exception):
    """The namespace connection did not complete (transport error, timeout or connect_error)."""


class SioClient:
    """A single websocket-only Socket.IO v5 client with a minimal parser."""

    __slots__ = ("auth", "group", "holes", "last_seq", "ns", "rec", "sid", "task", "url", "ws")

    def __init__(self, spec: ClientSpec, namespace: str, rec: Recorder) -> None:
        base = spec.url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[4:]
        self.url = f"{base}/socket.io/?EIO=4&transport=websocket"
        self.group = spec.group
        self.auth = spec.auth
        self.ns = namespace
        self.rec = rec
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.sid: str | None = None
        self.last_seq: dict[str, int] = {}
        self.holes: dict[str, set[int]] = {}
        self.task: asyncio.Task[str] | None = None

    def _prefix(self) -> str:
        return "" if self.ns == "/" else f"{self.ns},"

    async def connect(self, session: aiohttp.ClientSession, timeout: float, compress: bool) -> None:
        try:
            async with asyncio.timeout(timeout):
                ws = await session.ws_connect(
                    self.url,
                    compress=15 if compress else 0,
                    autoping=True,
                    max_msg_size=0,
                )
                self.ws = ws
                opened = False
                while True:
                    msg = await ws.receive()
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        raise ConnectFailedError(f"transport: {msg.type.name}")
                    data: str = msg.data
                    kind = data[:1]
                    if kind == "0" and not opened:
                        opened = True
                        ns_part = "" if self.ns == "/" else f"{self.ns},"
                        await ws.send_str("40" + ns_part + orjson.dumps(self.auth).decode())
                    elif kind == "2":
                        self.rec.pings += 1
                        await ws.send_str("3" + data[1:])
                    elif data.startswith("40"):
                        ns, _, body = self._split(data[2:])
                        if ns == self.ns:
                            self.sid = orjson.loads(body).get("sid") if body else None
                            return
                    elif data.startswith("44"):
                        ns, _, body = self._split(data[2:])
                        if ns == self.ns:
                            raise ConnectFailedError("connect_error: " + (body or "{}"))
                    elif kind == "1":
                        raise ConnectFailedError("closed by server")
        except TimeoutError:
            await self.close()
            raise ConnectFailedError("timeout") from None
        except aiohttp.ClientError as exc:
            await self.close()
            raise ConnectFailedError(f"transport: {type(exc).__name__}") from None
        except ConnectFailedError:
            await self.close()
            raise

    @staticmethod
    def _split(rest: str) -> tuple[str, int | None, str]:
        """Split ``[/ns,][ackid]json`` into (namespace, ack id, json text)."""
        ns = "/"
        if rest.startswith("/"):
            i = rest.find(",")
            if i < 0:
                return rest, None, ""
            ns, rest = rest[:i], rest[i + 1 :]
        j = 0
        n = len(rest)
        while j < n and rest[j].isdigit():
            j += 1
        return ns, (int(rest[:j]) if j else None), rest[j:]

    async def listen(self) -> str:
        """Read packets until the socket closes; returns why it ended."""
        ws = self.ws
        assert ws is not None
        rec = self.rec
        text = aiohttp.WSMsgType.TEXT
        now = time.time
        while True:
            msg = await ws.receive()
            t = now()
            if msg.type is not text:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    rec.binary_packets += 1
                    continue
                return msg.type.name
            data: str = msg.data
            kind = data[:1]
            if kind == "4":
                sio_type = data[1:2]
                if sio_type == "2":
                    ns, ack, body = self._split(data[2:])
                    try:
                        arr = orjson.loads(body)
                        name = arr[0]
                        payload = arr[1] if len(arr) > 1 else None
                    except (orjson.JSONDecodeError, IndexError, TypeError):
                        rec.parse_errors += 1
                        continue
                    rec.on_event(self, str(name), payload, t)
                    if ack is not None:
                        prefix = "" if ns == "/" else f"{ns},"
                        await ws.send_str(f"43{prefix}{ack}[]")
                        rec.acks_sent += 1
                elif sio_type in ("5", "6"):
                    rec.binary_packets += 1
                elif sio_type == "1":
                    return "namespace disconnect"
            elif kind == "2":
                rec.pings += 1
                await ws.send_str("3" + data[1:])
            elif kind == "1":
                return "engine.io close"

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.wait_for(self.ws.close(), 2.0)


class ClientGroup:
    """The clients of one event loop: connect with bounded concurrency, listen, close, summarise."""

    def __init__(
        self,
        specs: Sequence[ClientSpec],
        namespace: str,
        *,
        connect_concurrency: int = 50,
        connect_timeout: float = 20.0,
        compress: bool = False,
    ) -> None:
        self.specs = list(specs)
        self.namespace = namespace
        self.concurrency = max(1, connect_concurrency)
        self.connect_timeout = connect_timeout
        self.compress = compress
        self.rec = Recorder()
        self.clients: list[SioClient] = []
        self.connect_errors: Counter[str] = Counter()
        self.connect_hist = Histogram()
        self.connected_by: Counter[tuple[int, str]] = Counter()  # (group, market_id) -> connected
        self.ended_early: Counter[str] = Counter()
        self.deflate_negotiated = 0  # connections on which the server accepted permessage-deflate
        self.connect_started = 0.0
        self.connect_done = 0.0
        self._session: aiohttp.ClientSession | None = None

    async def connect_all(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self._session = aiohttp.ClientSession(connector=connector)
        sem = asyncio.Semaphore(self.concurrency)
        session = self._session

        async def one(spec: ClientSpec) -> None:
            client = SioClient(spec, self.namespace, self.rec)
            async with sem:
                t0 = time.perf_counter()
                try:
                    await client.connect(session, self.connect_timeout, self.compress)
                except ConnectFailedError as exc:
                    self.connect_errors[str(exc)[:200]] += 1
                    return
                self.connect_hist.add((time.perf_counter() - t0) * 1000.0)
            if client.ws is not None and client.ws.compress:
                self.deflate_negotiated += 1
            self.clients.append(client)
            self.connected_by[(spec.group, str(spec.auth.get("market_id")))] += 1
            client.task = asyncio.create_task(client.listen())

        self.connect_started = time.time()
        await asyncio.gather(*(one(s) for s in self.specs))
        self.connect_done = time.time()

    async def close_all(self) -> None:
        for c in self.clients:
            if c.task is not None and c.task.done() and not c.task.cancelled():
                exc = c.task.exception()
                self.ended_early["error: " + type(exc).__name__ if exc else c.task.result()] += 1
        sem = asyncio.Semaphore(200)

        async def one(c: SioClient) -> None:
            async with sem:
                await c.close()
            if c.task is not None and not c.task.done():
                c.task.cancel()

        await asyncio.gather(*(one(c) for c in self.clients), return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def connect_report(self) -> dict[str, Any]:
        return {
            "clients": len(self.specs),
            "connected": len(self.clients),
            "failed": sum(self.connect_errors.values()),
            "connect_errors": dict(self.connect_errors),
            "connect_started": self.connect_started,
            "connect_done": self.connect_done,
            "connect_hist": self.connect_hist.to_wire(),
            "connected_by": [[g, m, n] for (g, m), n in self.connected_by.items()],
            "deflate_negotiated": self.deflate_negotiated,
        }

    def result(self, sent_at: Mapping[str, float]) -> dict[str, Any]:
        """Compact aggregate: counts + latency histograms against ``sent_at`` (order id -> send time)."""
        rec = self.rec
        hists: dict[int, Histogram] = {}
        per_order: dict[int, dict[str, tuple[float, float, int]]] = {}
        unknown = 0
        for group, orders in rec.recv_times.items():
            h = hists.setdefault(group, Histogram())
            po = per_order.setdefault(group, {})
            for oid, times in orders.items():
                po[oid] = (min(times), max(times), len(times))
                sent = sent_at.get(oid)
                if sent is None:
                    unknown += len(times)
                    continue
                for t in times:
                    h.add((t - sent) * 1000.0)
        received_by_group = {g: sum(len(t) for t in o.values()) for g, o in rec.recv_times.items()}
        return {
            "received": rec.received,
            "by_event": dict(rec.by_event),
            "received_by_group": received_by_group,
            "duplicates": rec.duplicates,
            "out_of_order": rec.out_of_order,
            "gaps": rec.gaps,
            "missing_in_gaps": rec.missing_in_gaps,
            "still_missing": sum(len(h) for c in self.clients for h in c.holes.values()),
            "unknown_order_ids": unknown,
            "binary_packets": rec.binary_packets,
            "parse_errors": rec.parse_errors,
            "acks_sent": rec.acks_sent,
            "pings": rec.pings,
            "ended_early": dict(self.ended_early),
            "latency": {g: h.to_wire() for g, h in hists.items()},
            "per_order": per_order,
        }


def specs_round_robin(urls: Sequence[str], auth_list: Sequence[dict[str, Any]]) -> list[ClientSpec]:
    """Client i uses ``urls[i % len(urls)]`` (group = that index) and ``auth_list[i]``."""
    if not urls:
        raise ValueError("at least one URL is required")
    return [ClientSpec(urls[i % len(urls)], i % len(urls), dict(a)) for i, a in enumerate(auth_list)]


async def run_clients(
    urls: list[str],
    namespace: str,
    auth_list: list[dict[str, Any]],
    duration_s: float,
    *,
    connect_concurrency: int = 50,
    connect_timeout: float = 20.0,
    compress: bool = False,
    sent_at: Mapping[str, float] | Callable[[], Mapping[str, float]] | None = None,
    on_connected: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Connect ``len(auth_list)`` clients (round-robin over ``urls``) in this loop, listen ``duration_s``.

    ``sent_at`` (order id -> send time, or a callable producing it after the run) turns receive times
    into latencies. ``on_connected`` is called (and awaited if it returns an awaitable) once all clients
    have connected, e.g. to start emitting. Returns ``{"connect": ..., "result": ...}`` as produced by
    :class:`ClientGroup`, with latency summaries added.
    """
    group = ClientGroup(
        specs_round_robin(urls, auth_list),
        namespace,
        connect_concurrency=connect_concurrency,
        connect_timeout=connect_timeout,
        compress=compress,
    )
    try:
        await group.connect_all()
        report = group.connect_report()
        if on_connected is not None:
            maybe = on_connected(report)
            if asyncio.iscoroutine(maybe):
                await maybe
        await asyncio.sleep(duration_s)
    finally:
        await group.close_all()
    times = sent_at() if callable(sent_at) else (sent_at or {})
    result = group.result(times)
    merged = Histogram()
    for wire in result["latency"].values():
        merged.merge(Histogram.from_wire(wire))
    result["latency_summary"] = merged.summary()
    return {"connect": report, "result": result}


# ---------------------------------------------------------------------------------------------------------
# Multi-process driver


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _reply(conn: Connection, message: tuple[Any, ...]) -> None:
    """Send to the parent. The loop watches the pipe for reading, which leaves it non-blocking: a
    reply bigger than the pipe's buffer would fail half-written, so write this one blocking."""
    os.set_blocking(conn.fileno(), True)
    try:
        conn.send(message)
    finally:
        os.set_blocking(conn.fileno(), False)


def _worker_main(conn: Connection, specs: list[ClientSpec], opts: dict[str, Any]) -> None:
    """Entry point of a worker process: its own (uv)loop, commands and replies over ``conn``."""
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(_worker_async(conn, specs, opts))
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


async def _worker_async(conn: Connection, specs: list[ClientSpec], opts: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()

    def readable() -> None:
        # Blocking while reading: a command bigger than the pipe's buffer (the send times of a long
        # phase) arrives in several pieces, and a non-blocking read would fail between them.
        os.set_blocking(conn.fileno(), True)
        try:
            while conn.poll():
                inbox.put_nowait(conn.recv())
            os.set_blocking(conn.fileno(), False)
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(None)

    loop.add_reader(conn.fileno(), readable)
    group = ClientGroup(
        specs,
        opts.get("namespace", "/dashboard"),
        connect_concurrency=int(opts.get("connect_concurrency", 50)),
        connect_timeout=float(opts.get("connect_timeout", 20.0)),
        compress=bool(opts.get("compress", False)),
    )
    _reply(conn, ("ready", os.getpid()))
    try:
        while True:
            cmd = await inbox.get()
            if cmd is None:
                return
            op = cmd[0]
            if op == "connect":
                cpu0 = _cpu_seconds()
                await group.connect_all()
                report = group.connect_report()
                report["cpu_s"] = _cpu_seconds() - cpu0
                _reply(conn, ("connected", report))
            elif op == "count":
                _reply(conn, ("count", group.rec.order_events, _cpu_seconds()))
            elif op == "phase":
                # aggregates of the load phase that just ended; the connections stay open
                sent_at = cmd[1]
                result = group.result(sent_at)
                result["cpu_s_total"] = _cpu_seconds()
                result["cpu_s_before_close"] = result["cpu_s_total"]
                result["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                ended = [c for c in group.clients if c.task is not None and c.task.done()]
                result["ended_early"] = {"closed during the phase": len(ended)} if ended else {}
                group.rec.reset()
                for c in group.clients:
                    c.holes.clear()
                _reply(conn, ("result", result))
            elif op == "finish":
                sent_at: Mapping[str, float] = cmd[1]
                cpu_before_close = _cpu_seconds()
                await group.close_all()
                result = group.result(sent_at)
                result["cpu_s_total"] = _cpu_seconds()
                result["cpu_s_before_close"] = cpu_before_close
                result["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                _reply(conn, ("result", result))
                return
    finally:
        loop.remove_reader(conn.fileno())
        if any(c.ws is not None and not c.ws.closed for c in group.clients):
            await group.close_all()


@dataclass
class _Worker:
    proc: mp.process.BaseProcess
    conn: Connection
    pid: int = 0


class WorkerPool:
    """Split client specs over K worker processes and drive them: start -> connect -> count* -> finish."""

    def __init__(
        self,
        specs: Sequence[ClientSpec],
        workers: int,
        *,
        namespace: str = "/dashboard",
        connect_concurrency: int = 50,
        connect_timeout: float = 20.0,
        compress: bool = False,
    ) -> None:
        k = max(1, min(workers, len(specs) or 1))
        # contiguous blocks, so that with round-robin specs every worker holds clients of every instance
        n = len(specs)
        self.parts: list[list[ClientSpec]] = [list(specs[i * n // k : (i + 1) * n // k]) for i in range(k)]
        # each worker gets its share of the connect concurrency
        per = max(1, connect_concurrency // k)
        self.opts: dict[str, Any] = {
            "namespace": namespace,
            "connect_concurrency": per,
            "connect_timeout": connect_timeout,
            "compress": compress,
        }
        self.workers: list[_Worker] = []
        self._ctx = mp.get_context("spawn")

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    async def _recv(self, w: _Worker, timeout: float) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, w.conn.poll, timeout)
        if not ready:
            raise TimeoutError(f"worker {w.pid} did not answer within {timeout}s")
        msg: tuple[Any, ...] = w.conn.recv()
        return msg

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the workers and wait until each has its loop running."""
        for part in self.parts:
            parent, child = self._ctx.Pipe(duplex=True)
            proc = self._ctx.Process(target=_worker_main, args=(child, part, self.opts), daemon=True)
            proc.start()
            child.close()
            self.workers.append(_Worker(proc, parent))
        for w in self.workers:
            msg = await self._recv(w, timeout)
            w.pid = int(msg[1])

    async def connect(self, timeout: float = 300.0) -> dict[str, Any]:
        """Tell every worker to connect its clients now; returns the merged connect report."""
        t_go = time.time()
        for w in self.workers:
            w.conn.send(("connect",))
        reports = [(await self._recv(w, timeout))[1] for w in self.workers]
        hist = Histogram()
        errors: Counter[str] = Counter()
        connected_by: Counter[tuple[int, str]] = Counter()
        for r in reports:
            hist.merge(Histogram.from_wire(r["connect_hist"]))
            errors.update(r["connect_errors"])
            for g, m, n in r["connected_by"]:
                connected_by[(int(g), str(m))] += int(n)
        return {
            "clients": sum(r["clients"] for r in reports),
            "connected": sum(r["connected"] for r in reports),
            "failed": sum(r["failed"] for r in reports),
            "deflate_negotiated": sum(int(r.get("deflate_negotiated", 0)) for r in reports),
            "connect_errors": dict(errors),
            "time_to_connect_all_s": round(max(r["connect_done"] for r in reports) - t_go, 3),
            "per_client_connect": hist.summary(),
            "connected_by": connected_by,
            "worker_cpu_s": [round(r["cpu_s"], 3) for r in reports],
        }

    async def received(self) -> int:
        total = 0
        for w in self.workers:
            w.conn.send(("count",))
        for w in self.workers:
            total += int((await self._recv(w, 30.0))[1])
        return total

    async def finish(self, sent_at: Mapping[str, float], timeout: float = 120.0) -> dict[str, Any]:
        """Close all clients and merge the workers' aggregates (latencies against ``sent_at``)."""
        payload = dict(sent_at)
        for w in self.workers:
            w.conn.send(("finish", payload))
        results = [(await self._recv(w, timeout))[1] for w in self.workers]
        for w in self.workers:
            w.proc.join(10)
        return merge_results(results)

    async def phase_result(self, sent_at: Mapping[str, float], timeout: float = 120.0) -> dict[str, Any]:
        """The merged aggregates of the phase that just ended (latencies against ``sent_at``); the
        workers then count afresh on the same connections."""
        payload = dict(sent_at)
        for w in self.workers:
            w.conn.send(("phase", payload))
        results = [(await self._recv(w, timeout))[1] for w in self.workers]
        return merge_results(results)

    def terminate(self) -> None:
        for w in self.workers:
            if w.proc.is_alive():
                w.proc.terminate()
        for w in self.workers:
            w.proc.join(5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(2)
            w.conn.close()


def merge_results(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge worker aggregates into one: summed counters, merged histograms, per-order first/last receipt."""
    scalar_keys = (
        "received",
        "duplicates",
        "out_of_order",
        "gaps",
        "missing_in_gaps",
        "still_missing",
        "unknown_order_ids",
        "binary_packets",
        "parse_errors",
        "acks_sent",
        "pings",
    )
    out: dict[str, Any] = {k: sum(int(r[k]) for r in results) for k in scalar_keys}
    by_event: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    by_group: Counter[int] = Counter()
    hists: dict[int, Histogram] = {}
    per_order: dict[int, dict[str, list[float]]] = {}
    for r in results:
        by_event.update(r["by_event"])
        ended.update(r["ended_early"])
        for g, n in r["received_by_group"].items():
            by_group[int(g)] += int(n)
        for g, wire in r["latency"].items():
            hists.setdefault(int(g), Histogram()).merge(Histogram.from_wire(wire))
        for g, orders in r["per_order"].items():
            po = per_order.setdefault(int(g), {})
            for oid, (lo, hi, n) in orders.items():
                cur = po.get(oid)
                if cur is None:
                    po[oid] = [lo, hi, n]
                else:
                    cur[0] = min(cur[0], lo)
                    cur[1] = max(cur[1], hi)
                    cur[2] += n
    out["by_event"] = dict(by_event)
    out["ended_early"] = dict(ended)
    out["received_by_group"] = dict(by_group)
    out["latency_hists"] = hists
    out["per_order"] = per_order
    out["worker_cpu_s"] = [round(float(r["cpu_s_total"]), 3) for r in results]
    out["worker_cpu_s_before_close"] = [round(float(r["cpu_s_before_close"]), 3) for r in results]
    out["worker_max_rss_kb"] = [int(r["max_rss_kb"]) for r in results]
    return out


# ---------------------------------------------------------------------------------------------------------
# CLI


async def _cli(args: argparse.Namespace) -> None:
    auth = [{"token": args.token, "market_id": args.market} for _ in range(args.clients)]
    specs = specs_round_robin(args.url, auth)
    pool = WorkerPool(
        specs,
        args.workers,
        namespace=args.namespace,
        connect_concurrency=args.connect_concurrency,
        compress=args.compress,
    )
    try:
        await pool.start()
        report = await pool.connect()
        report["connected_by"] = [[g, m, n] for (g, m), n in report["connected_by"].items()]
        print(orjson.dumps({"connect": report}).decode(), flush=True)
        await asyncio.sleep(args.duration)
        result = await pool.finish({})
        result.pop("per_order")
        result["latency_hists"] = {g: h.summary() for g, h in result["latency_hists"].items()}
        print(
            orjson.dumps({"result": result}, option=orjson.OPT_NON_STR_KEYS).decode(),
            flush=True,
        )
    finally:
        pool.terminate()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Lean Socket.IO websocket load generator")
    p.add_argument("--url", action="append", required=True, help="server base URL (repeatable)")
    p.add_argument("-n", "--clients", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--namespace", default="/dashboard")
    p.add_argument("--market", default="bench-m1")
    p.add_argument("--token", default="bench")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--connect-concurrency", type=int, default=50)
    p.add_argument("--compress", action="store_true", help="enable permessage-deflate")
    args = p.parse_args(argv)
    for u in args.url:
        host = u.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            p.error("loopback URLs only")
    try:
        asyncio.run(_cli(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
