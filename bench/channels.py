"""Per-room Redis channels against the one shared channel: what each instance receives from Redis.

    python -m bench.channels --instances 4 --per-instance 250 --rate 20 --duration 15

Starts nx-27017 and `--instances` hubs (bench/targets.py HubTarget) twice, once with
REDIS_ROOM_CHANNELS=true and once with false. Each instance gets the dashboards of one market of its
own (market i's dashboards all sit on instance i), orders are placed on instance 0 at `--rate` a
second for `--duration` seconds, spread over the markets. Reported per instance: Redis messages
received (shared channel and room channels, from /metrics), events delivered to its clients, and
its CPU time per delivery during the load phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.loadgen import ClientSpec, WorkerPool
from bench.targets import HubTarget

METRICS = ("hub_redis_shared_channel_messages_total", "hub_redis_room_channel_messages_total")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(f"{url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def one_run(args: argparse.Namespace, room_channels: bool) -> dict[str, Any]:
    target = HubTarget(instances=args.instances, extra_env={"REDIS_ROOM_CHANNELS": str(room_channels).lower()})
    markets = [f"m{i}" for i in range(args.instances)]
    await target.start()
    pool: WorkerPool | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await target.prepare(session, markets, clients=1)
            specs = [
                ClientSpec(url, i, target.auth_for(0, markets[i]))
                for i, url in enumerate(target.endpoints)
                for _ in range(args.per_instance)
            ]
            pool = WorkerPool(specs, args.workers)
            await pool.start()
            await pool.connect()
            await asyncio.sleep(2)
            before = [[await _metric(session, url, m) for m in METRICS] for url in target.endpoints]
            cpu_before = [_cpu_seconds(pid) for pid in target.server_pids()]
            sent: dict[str, float] = {}
            placed = [0] * args.instances
            deadline, turn = time.monotonic() + args.duration, 0
            while time.monotonic() < deadline:
                outcome = await target.emit(session, markets[turn % args.instances])
                if outcome.ok:
                    sent[outcome.order_id] = outcome.sent_at
                    placed[turn % args.instances] += 1
                turn += 1
                await asyncio.sleep(1 / args.rate)
            await asyncio.sleep(3)  # the last deliveries
            cpu_after = [_cpu_seconds(pid) for pid in target.server_pids()]
            after = [[await _metric(session, url, m) for m in METRICS] for url in target.endpoints]
            result = await pool.phase_result(sent)
        delivered = result["received_by_group"]
        instances = []
        for i in range(args.instances):
            deliveries = delivered.get(i, 0)
            cpu = cpu_after[i] - cpu_before[i]
            instances.append({
                "instance": i, "orders_for_its_market": placed[i], "deliveries": deliveries,
                "redis_shared_messages": after[i][0] - before[i][0], "redis_room_messages": after[i][1] - before[i][1],
                "cpu_s": round(cpu, 2), "cpu_us_per_delivery": round(cpu / deliveries * 1e6, 1) if deliveries else None,
            })  # fmt: skip
        return {"room_channels": room_channels, "orders": sum(placed), "instances": instances}
    finally:
        if pool is not None:
            pool.terminate()
        await target.stop()


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [await one_run(args, True), await one_run(args, False)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--per-instance", type=int, default=250, help="dashboards per instance (of its market)")
    parser.add_argument("--rate", type=float, default=20.0, help="orders a second, on instance 0")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    json.dump(asyncio.run(run(parser.parse_args(argv))), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
