"""Memory per idle WebSocket connection: N dashboards connected to one hub instance, nothing sent.

    python -m bench.memory -n 10000              # RSS per connection (no tracing: the figure that counts)
    python -m bench.memory -n 2000 --trace       # + where it goes: tracemalloc per source line, objects per type

Starts nx-27017 and one hub (bench/targets.py HubTarget, with Redis as in production) running under
bench/memhub.py, which reports RSS, live objects per type and (with --trace) tracemalloc statistics on
SIGUSR1. Probes before and after the clients connect (lean websocket clients in worker processes,
bench/loadgen.py); the difference divided by the connections is the cost of one connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.loadgen import ClientSpec, WorkerPool
from bench.targets import HubTarget


async def probe(target: HubTarget, out: Path, number: int) -> dict[str, Any]:
    """Signal the hub for its `number`th probe and read it (bench/memhub.py writes it whole)."""
    os.kill(target.procs[0].pid, signal.SIGUSR1)
    path = Path(f"{out}.{number}")
    deadline = time.monotonic() + 300
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the hub did not answer the memory probe")
        await asyncio.sleep(0.2)
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def per_connection(before: dict[str, Any], after: dict[str, Any], key: str, n: int, top: int) -> list[dict[str, Any]]:
    rows = []
    for name, (count, size) in after.get(key, {}).items():
        count0, size0 = before.get(key, {}).get(name, (0, 0))
        if size - size0 > 0:
            rows.append({"what": name, "count_per_conn": round((count - count0) / n, 2),
                         "bytes_per_conn": round((size - size0) / n)})  # fmt: skip
    rows.sort(key=lambda row: -row["bytes_per_conn"])
    return rows[:top]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="bench-memory-")) / "probe"
    python = [sys.executable, *(["-X", f"tracemalloc={args.frames}"] if args.trace else []), "-m", "bench.memhub"]
    target = HubTarget(instances=1, command=python, extra_env={"MEMHUB_OUT": str(out), **dict(args.env)})
    markets = [f"m{i}" for i in range(args.markets)]
    await target.start()
    pool: WorkerPool | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await target.prepare(session, markets, clients=args.clients)
        url = target.endpoints[0]
        specs = [ClientSpec(url, 0, target.auth_for(i, markets[i % len(markets)])) for i in range(args.clients)]
        pool = WorkerPool(specs, args.workers, connect_concurrency=args.concurrency)
        await pool.start()
        await asyncio.sleep(2)
        before = await probe(target, out, 1)
        report = await pool.connect()
        await asyncio.sleep(args.settle)
        after = await probe(target, out, 2)
        n = report["connected"]
        result = {
            "connections": n, "connect_failed": report["failed"], "trace": args.trace, "env": dict(args.env),
            "rss_before_mb": round(before["rss_kb"] / 1024, 1), "rss_after_mb": round(after["rss_kb"] / 1024, 1),
            "kb_per_connection": round((after["rss_kb"] - before["rss_kb"]) / n, 1) if n else None,
            "objects_per_type": per_connection(before, after, "types", n, args.top),
            "coroutines": per_connection(before, after, "coroutines", n, args.top),
        }  # fmt: skip
        if args.trace and n:
            result["traced_kb_per_connection"] = round((after["traced_bytes"] - before["traced_bytes"]) / n / 1024, 2)
            result["lines"] = per_connection(before, after, "lines", n, args.top)
        return result
    finally:
        if pool is not None:
            pool.terminate()
        await target.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--clients", type=int, default=10_000)
    parser.add_argument("--markets", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--concurrency", type=int, default=50, help="connects in flight")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between the last connect and the probe")
    parser.add_argument("--trace", action="store_true", help="run the hub under tracemalloc")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--env", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    json.dump(asyncio.run(run(args)), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
