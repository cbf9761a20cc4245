"""Realtime fan-out benchmark runner (issue 7).

    python -m bench.run --target baseline -n 200 --rate 20 --duration 10

Starts the target's instances (loopback only), connects N websocket clients split round-robin over the
instances with K load-generator processes, emits orders at R/s for D s through instance A, waits for the
deliveries to drain, then reports: deliveries/s, lost deliveries, duplicates, gaps, end-to-end latency
(request send -> client receipt) overall / on A / on the other instances, fan-out completion per order,
time to connect all clients, server RSS before/after connecting (KB per connection), and CPU seconds of
every server and load-generator process per phase so the bottleneck is visible.

Output: one JSON line on stdout, a human table on stderr, and ``bench/results/<target>-<timestamp>.json``.
Every process it starts is stopped at the end, also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.loadgen import Histogram, WorkerPool, specs_round_robin
from bench.targets import TARGETS, EmitOutcome, Target

try:
    import psutil  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - /proc fallback
    psutil = None

RESULTS_DIR = Path(__file__).with_name("results")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------------
# Process sampling


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float
    rss_kb: int


def sample(pid: int) -> ProcSample | None:
    try:
        if psutil is not None:
            p = psutil.Process(pid)
            ct = p.cpu_times()
            return ProcSample(ct.user + ct.system, p.memory_info().rss // 1024)
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / CLK_TCK
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return ProcSample(cpu, rss)
    except (OSError, ValueError, IndexError):
        return None
    except Exception as exc:  # psutil.NoSuchProcess and friends
        if psutil is not None and isinstance(exc, psutil.Error):
            return None
        raise


def system_busy() -> tuple[float, float]:
    """(busy seconds, total seconds) summed over all CPUs, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def snapshot(pids: dict[str, int]) -> dict[str, ProcSample | None]:
    return {name: sample(pid) for name, pid in pids.items()}


def cpu_delta(
    a: dict[str, ProcSample | None], b: dict[str, ProcSample | None], wall: float
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, sa in a.items():
        sb = b.get(name)
        if sa is None or sb is None:
            continue
        d = sb.cpu_s - sa.cpu_s
        out[name] = {
            "cpu_s": round(d, 3),
            "core_pct": round(100.0 * d / wall, 1) if wall > 0 else 0.0,
        }
    return out


# ---------------------------------------------------------------------------------------------------------
# Emitting


async def emit_orders(
    target: Target,
    markets: list[str],
    rate: float,
    duration: float,
    max_inflight: int,
) -> tuple[list[EmitOutcome], float, float]:
    """Emit ``rate * duration`` orders on a fixed schedule (bounded in-flight); returns outcomes, t0, t_end."""
    total = round(rate * duration)
    outcomes: list[EmitOutcome] = []
    sem = asyncio.Semaphore(max_inflight)
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=max_inflight)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []

        async def one(market_id: str) -> None:
            try:
                outcomes.append(await target.emit(session, market_id))
            finally:
                sem.release()

        t0 = time.time()
        start = loop.time()
        # bounded in time: a target that cannot take `rate` gets fewer orders, not a longer run
        deadline = start + duration * 1.5 + 2.0
        for i in range(total):
            if loop.time() > deadline:
                break
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            tasks.append(asyncio.create_task(one(markets[i % len(markets)])))
        if tasks:
            await asyncio.gather(*tasks)
        t_end = time.time()
    return outcomes, t0, t_end


# ---------------------------------------------------------------------------------------------------------
# Run


def achieved_rate(outcomes: list[EmitOutcome], planned: float) -> float:
    """Send rate actually achieved: (n - 1) intervals over first..last send time."""
    if len(outcomes) < 2:
        return planned
    times = sorted(o.sent_at for o in outcomes)
    span = times[-1] - times[0]
    return round((len(times) - 1) / span, 2) if span > 0 else planned


def _pct(h: Histogram) -> dict[str, float | int | None]:
    return h.summary()


@dataclass
class Bench:
    """A target with N clients connected: load phases run on it one after another."""

    args: argparse.Namespace
    target: Target
    markets: list[str]
    pool: WorkerPool
    pids: dict[str, int]
    connected_by: dict[tuple[int, str], int]
    connect: dict[str, Any]
    servers: list[dict[str, Any]]
    cpu_connect_phase: dict[str, dict[str, float]]
    last_snapshot: dict[str, ProcSample | None]


def make_target(args: argparse.Namespace, target_name: str) -> Target:
    factory: Callable[..., Target] = TARGETS[target_name]
    options: dict[str, Any] = {"instances": args.instances, "redis_url": args.redis_url}
    options["uvloop"] = not args.no_server_uvloop
    if target_name == "hub" and args.hub_env:
        options["extra_env"] = dict(item.split("=", 1) for item in args.hub_env)
    return factory(**options)


async def setup(args: argparse.Namespace, target_name: str) -> Bench:
    """Start the target, prepare it, connect N clients; the caller must ``teardown`` (also on error)."""
    target = make_target(args, target_name)
    markets = [f"bench-m{i + 1}" for i in range(args.markets)]
    n_inst = args.instances
    pool: WorkerPool | None = None
    bench: Bench | None = None
    try:
        await target.start()
        async with aiohttp.ClientSession() as s:
            await target.prepare(s, markets, args.clients)
        auth = [target.auth_for(i, markets[(i // n_inst) % len(markets)]) for i in range(args.clients)]
        specs = specs_round_robin(target.endpoints, auth)
        pool = WorkerPool(
            specs,
            args.workers,
            namespace=target.namespace,
            connect_concurrency=args.connect_concurrency,
            compress=args.compress,
        )
        await pool.start()
        pids = {f"server{i}": pid for i, pid in enumerate(target.server_pids())}
        pids.update({f"loadgen{i}": pid for i, pid in enumerate(pool.pids)})
        pids.update(target.aux_pids())
        pids["runner"] = os.getpid()

        await asyncio.sleep(0.5)
        s0 = snapshot(pids)
        w0 = time.time()
        conn = await pool.connect()
        await asyncio.sleep(1.0)  # let the servers settle (GC, buffers) before measuring RSS
        s1 = snapshot(pids)
        w1 = time.time()

        connected_by: dict[tuple[int, str], int] = conn.pop("connected_by")
        per_inst_conn = [sum(n for (g, _), n in connected_by.items() if g == i) for i in range(n_inst)]
        servers: list[dict[str, Any]] = []
        for i in range(n_inst):
            a, b = s0.get(f"server{i}"), s1.get(f"server{i}")
            entry: dict[str, Any] = {"connected": per_inst_conn[i]}
            if a and b:
                entry.update(
                    rss_before_mb=round(a.rss_kb / 1024, 1),
                    rss_after_connect_mb=round(b.rss_kb / 1024, 1),
                    kb_per_connection=round((b.rss_kb - a.rss_kb) / per_inst_conn[i], 1) if per_inst_conn[i] else None,
                    # the whole connect phase's CPU of that server over the connections it accepted
                    cpu_us_per_connection=round(1e6 * (b.cpu_s - a.cpu_s) / per_inst_conn[i])
                    if per_inst_conn[i]
                    else None,
                )
            servers.append(entry)
        bench = Bench(args, target, markets, pool, pids, connected_by, conn, servers, cpu_delta(s0, s1, w1 - w0), s1)
        return bench
    finally:
        if bench is None:
            if pool is not None:
                pool.terminate()
            await target.stop()


async def teardown(bench: Bench) -> None:
    bench.pool.terminate()
    await bench.target.stop()


def start_profilers(bench: Bench, duration: float) -> list[subprocess.Popen[bytes]]:
    """py-spy on every server for the emit phase: bench/results/profile-<target>-server<i>.svg."""
    RESULTS_DIR.mkdir(exist_ok=True)
    procs = []
    for i, pid in enumerate(bench.target.server_pids()):
        out = RESULTS_DIR / f"profile-{bench.target.name}-server{i}.svg"
        # raw = collapsed stacks (one line per stack and count): grep-able, and flamegraph.pl turns it into an SVG
        cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", "100"]
        cmd += ["--format", "raw", "-o", str(out.with_suffix(".txt"))]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


async def load_phase(bench: Bench, rate: float, duration: float) -> dict[str, Any]:
    """Emit at ``rate`` for ``duration`` s through instance A, drain, and report the phase."""
    args, target, pool = bench.args, bench.target, bench.pool
    n_inst = args.instances
    connected_by = bench.connected_by
    result: dict[str, Any] = {
        "target": target.name,
        "params": {
            "clients": args.clients,
            "rate": rate,
            "duration_s": duration,
            "instances": n_inst,
            "markets": args.markets,
            "workers": args.workers,
            "compress": args.compress,
            "connect_concurrency": args.connect_concurrency,
            "cpus": os.cpu_count(),
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "connect": bench.connect,
        "cpu_connect_phase": bench.cpu_connect_phase,
    }
    s1 = snapshot(bench.pids)
    busy0 = system_busy()
    profilers = start_profilers(bench, duration) if args.profile else []
    outcomes, t_emit0, t_emit_end = await emit_orders(target, bench.markets, rate, duration, args.max_inflight)
    for proc in profilers:
        await asyncio.to_thread(proc.wait, 60)
    ok = [o for o in outcomes if o.ok]
    expected_by_group = [0] * n_inst
    for o in ok:
        for g in range(n_inst):
            expected_by_group[g] += connected_by.get((g, o.market_id), 0)
    expected = sum(expected_by_group)

    # ---- drain: wait until everything expected arrived, or no progress for drain_idle seconds
    t_drain0 = time.time()
    last, last_change = -1, time.monotonic()
    while True:
        got = await pool.received()
        now = time.monotonic()
        if got != last:
            last, last_change = got, now
        if got >= expected or now - last_change >= args.drain_idle or time.time() - t_drain0 > 60:
            break
        await asyncio.sleep(0.2)
    t_drain_end = time.time()
    s2 = snapshot(bench.pids)
    busy1 = system_busy()
    bench.last_snapshot = s2

    sent_at = {o.order_id: o.sent_at for o in ok}
    res = await pool.phase_result(sent_at)

    # ---- metrics
    hists: dict[int, Histogram] = res.pop("latency_hists")
    overall = Histogram()
    for h in hists.values():
        overall.merge(h)
    others = Histogram()
    for g, h in hists.items():
        if g != 0:
            others.merge(h)
    per_order: dict[int, dict[str, list[float]]] = res.pop("per_order")
    last_receipt: dict[str, float] = {}
    first_receipt: dict[str, float] = {}
    for orders in per_order.values():
        for oid, (lo, hi, _n) in orders.items():
            last_receipt[oid] = max(last_receipt.get(oid, 0.0), hi)
            first_receipt[oid] = min(first_receipt.get(oid, float("inf")), lo)
    fanout_done = Histogram()
    fanout_first = Histogram()
    for oid, t in last_receipt.items():
        if oid in sent_at:
            fanout_done.add((t - sent_at[oid]) * 1000.0)
            fanout_first.add((first_receipt[oid] - sent_at[oid]) * 1000.0)
    rtt = Histogram()
    for o in outcomes:
        rtt.add(o.rtt_ms)

    delivered = sum(int(v) for v in res["received_by_group"].values())
    last_t = max(last_receipt.values(), default=t_emit_end)
    active = max(duration, last_t - t_emit0)
    load_wall = t_drain_end - t_emit0
    busy = (busy1[0] - busy0[0], busy1[1] - busy0[1])
    cpu_load = cpu_delta(s1, s2, load_wall)
    servers = [dict(e) for e in bench.servers]
    for i, entry in enumerate(servers):
        b2 = s2.get(f"server{i}")
        if b2:
            entry["rss_after_load_mb"] = round(b2.rss_kb / 1024, 1)
        entry["cpu_load_phase"] = cpu_load.get(f"server{i}")
        entry["cpu_connect_phase"] = bench.cpu_connect_phase.get(f"server{i}")
        cl = cpu_load.get(f"server{i}")
        if cl and ok:  # instance A places the orders; the others only fan out
            entry["cpu_ms_per_order"] = round(1000 * cl["cpu_s"] / len(ok), 2)
        if cl and delivered:
            # server CPU per delivery (all servers' load-phase CPU is in the total below)
            entry["cpu_us_per_local_delivery"] = round(
                1e6 * cl["cpu_s"] / max(1, int(res["received_by_group"].get(i, 0))), 1
            )

    result["emit"] = {
        "orders_planned": round(rate * duration),
        "orders_sent": len(outcomes),
        "orders_ok": len(ok),
        "errors": sorted({f"{o.status}:{o.error}" for o in outcomes if not o.ok}),
        "achieved_rate": achieved_rate(outcomes, rate),
        "request_rtt": _pct(rtt),
    }
    result["delivery"] = {
        "expected": expected,
        "delivered": delivered,
        "lost": expected - delivered,
        "loss_pct": round(100.0 * (expected - delivered) / expected, 3) if expected else None,
        "expected_by_instance": expected_by_group,
        "delivered_by_instance": [int(res["received_by_group"].get(g, 0)) for g in range(n_inst)],
        "duplicates": res["duplicates"],
        "out_of_order": res["out_of_order"],
        "gaps": res["gaps"],
        "missing_in_gaps": res["missing_in_gaps"],
        "still_missing_after_gaps": res["still_missing"],
        "unknown_order_ids": res["unknown_order_ids"],
        "events_by_name": res["by_event"],
        "deliveries_per_s": round(delivered / active, 1) if active > 0 else None,
        "offered_deliveries_per_s": round(expected / max(1e-9, duration), 1),
        "drain_s": round(t_drain_end - t_emit_end, 2),
        "clients_ended_early": res["ended_early"],
        "binary_packets": res["binary_packets"],
        "parse_errors": res["parse_errors"],
    }
    result["latency_ms"] = {
        "overall": overall.summary(),
        "instance_A": hists.get(0, Histogram()).summary(),
        "other_instances": others.summary(),
        "fanout_first_receipt": fanout_first.summary(),
        "fanout_last_receipt": fanout_done.summary(),
    }
    result["servers"] = servers
    result["cpu_load_phase"] = cpu_load
    server_cpu = sum(v["cpu_s"] for k, v in cpu_load.items() if k.startswith("server"))
    result["server_cpu_us_per_delivery"] = round(1e6 * server_cpu / delivered, 1) if delivered else None
    result["load_phase_wall_s"] = round(load_wall, 2)
    result["system_cpu_busy_pct_of_all_cores"] = round(100.0 * busy[0] / busy[1], 1) if busy[1] else None
    # redis-server is shared with other users of the machine: its CPU is not all ours, but it is ours to watch
    ours = sum(v["cpu_s"] for k, v in cpu_load.items() if k != "redis-server")
    result["foreign_cpu_load_phase"] = {
        "cpu_s": round(max(0.0, busy[0] - ours), 2),
        "core_pct": round(100.0 * max(0.0, busy[0] - ours) / load_wall, 1),
        "note": "CPU used during the load phase by processes this benchmark did not start (incl. redis-server)",
    }
    result["loadgen"] = {
        "workers": len(pool.pids),
        "cpu_connect_phase": [bench.cpu_connect_phase.get(f"loadgen{i}") for i in range(len(pool.pids))],
        "cpu_load_phase": [cpu_load.get(f"loadgen{i}") for i in range(len(pool.pids))],
        "max_rss_mb": [round(k / 1024, 1) for k in res["worker_max_rss_kb"]],
    }
    result["runner_cpu_load_phase"] = cpu_load.get("runner")
    hot = [name for name, v in cpu_load.items() if name.startswith("loadgen") and v["core_pct"] >= args.bottleneck_pct]
    result["loadgen_bottleneck"] = hot
    return result


async def run(args: argparse.Namespace, target_name: str | None = None) -> dict[str, Any]:
    """One target, one load phase."""
    bench = await setup(args, target_name or args.target)
    try:
        return await load_phase(bench, args.rate, args.duration)
    finally:
        await teardown(bench)


def human_table(r: dict[str, Any]) -> str:
    p, d, lat, c = r["params"], r["delivery"], r["latency_ms"], r["connect"]
    lines = [
        (
            f"target={r['target']} clients={p['clients']} rate={p['rate']}/s duration={p['duration_s']}s "
            f"instances={p['instances']} markets={p['markets']} workers={p['workers']} compress={p['compress']}"
        ),
        f"connect: {c['connected']}/{c['clients']} in {c['time_to_connect_all_s']}s "
        f"(per client p50 {c['per_client_connect']['p50_ms']} ms, p99 {c['per_client_connect']['p99_ms']} ms)"
        + (f" errors={c['connect_errors']}" if c["connect_errors"] else ""),
        (
            f"emit: {r['emit']['orders_ok']}/{r['emit']['orders_planned']} ok, "
            f"achieved {r['emit']['achieved_rate']}/s, "
            f"POST rtt p50 {r['emit']['request_rtt']['p50_ms']} ms p99 {r['emit']['request_rtt']['p99_ms']} ms"
        ),
        (
            f"delivery: {d['delivered']}/{d['expected']} lost={d['lost']} ({d['loss_pct']} %) dup={d['duplicates']} "
            f"gaps={d['gaps']} "
            f"late(out-of-order)={d['out_of_order']}  {d['deliveries_per_s']}/s "
            f"(offered {d['offered_deliveries_per_s']}/s), "
            f"drain {d['drain_s']}s"
        ),
        "",
        f"{'latency ms':<22}{'count':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}",
    ]
    for name, s in lat.items():
        lines.append(
            f"{name:<22}{s['count']:>8}{s['p50_ms'] or '-':>9}{s['p90_ms'] or '-':>9}"
            f"{s['p99_ms'] or '-':>9}{s['max_ms'] or '-':>9}"
        )
    lines += [
        "",
        f"{'process':<12}{'rss0 MB':>9}{'rss1 MB':>9}{'KB/conn':>9}{'cpu conn s':>11}{'cpu load s':>11}{'% core':>8}",
    ]
    for i, s in enumerate(r["servers"]):
        cc, cl = s.get("cpu_connect_phase") or {}, s.get("cpu_load_phase") or {}
        lines.append(
            f"{'server' + str(i):<12}{s.get('rss_before_mb', '-'):>9}{s.get('rss_after_connect_mb', '-'):>9}"
            f"{s.get('kb_per_connection', '-'):>9}{cc.get('cpu_s', '-'):>11}{cl.get('cpu_s', '-'):>11}"
            f"{cl.get('core_pct', '-'):>8}"
        )
    lg = r["loadgen"]
    for i in range(lg["workers"]):
        cc, cl = lg["cpu_connect_phase"][i] or {}, lg["cpu_load_phase"][i] or {}
        lines.append(
            f"{'loadgen' + str(i):<12}{'':>9}{lg['max_rss_mb'][i]:>9}{'':>9}{cc.get('cpu_s', '-'):>11}"
            f"{cl.get('cpu_s', '-'):>11}{cl.get('core_pct', '-'):>8}"
        )
    for name, cl in r["cpu_load_phase"].items():
        if name.startswith(("server", "loadgen")) or name == "runner":
            continue
        cc = r["cpu_connect_phase"].get(name) or {}
        lines.append(
            f"{name:<12}{'':>9}{'':>9}{'':>9}{cc.get('cpu_s', '-'):>11}{cl.get('cpu_s', '-'):>11}"
            f"{cl.get('core_pct', '-'):>8}"
        )
    rc = r.get("runner_cpu_load_phase") or {}
    lines.append(f"{'runner':<12}{'':>9}{'':>9}{'':>9}{'':>11}{rc.get('cpu_s', '-'):>11}{rc.get('core_pct', '-'):>8}")
    lines.append(
        f"load phase {r['load_phase_wall_s']}s, whole machine busy {r['system_cpu_busy_pct_of_all_cores']}% "
        f"of {p['cpus']} cores; other processes used {r['foreign_cpu_load_phase']['core_pct']}% of a core"
    )
    if r["loadgen_bottleneck"]:
        lines.append(f"WARNING: load generator near a full core: {', '.join(r['loadgen_bottleneck'])}")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Market Hub realtime fan-out benchmark")
    p.add_argument("--target", choices=[*sorted(TARGETS), "both"], default="baseline")
    p.add_argument(
        "--mode",
        choices=["fanout", "matrix", "orders"],
        default="fanout",
        help="fanout: one load phase; matrix: sweep N x R; orders: order placement throughput (hub)",
    )
    p.add_argument("-n", "--clients", type=int, default=200)
    p.add_argument("-r", "--rate", type=float, default=20.0, help="orders per second")
    p.add_argument("-d", "--duration", type=float, default=10.0, help="emit duration (s)")
    p.add_argument("--matrix-clients", type=_ints, default=[100, 1000, 5000], help="N values, e.g. 100,1000")
    p.add_argument("--matrix-rates", type=_ints, default=[10, 100, 500], help="R values, e.g. 10,100,500")
    p.add_argument("--instances", type=int, default=2)
    p.add_argument(
        "--markets",
        type=int,
        default=1,
        help="clients and orders spread over M markets",
    )
    p.add_argument("--workers", type=int, default=2, help="load generator processes")
    p.add_argument("--connect-concurrency", type=int, default=50)
    p.add_argument("--max-inflight", type=int, default=32, help="bound on concurrent emit requests")
    p.add_argument(
        "--drain-idle",
        type=float,
        default=3.0,
        help="stop waiting after this long without progress",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    p.add_argument(
        "--compress",
        action="store_true",
        help="permessage-deflate on client websockets",
    )
    p.add_argument("--no-server-uvloop", action="store_true")
    p.add_argument("--bottleneck-pct", type=float, default=85.0)
    p.add_argument("--hub-env", action="append", default=[], metavar="NAME=VALUE", help="extra hub setting")
    p.add_argument("--profile", action="store_true", help="py-spy every server during the emit phase")
    p.add_argument("--tag", default="", help="added to the result file names")
    p.add_argument(
        "--no-save",
        action="store_true",
        help="do not write bench/results/<target>-<ts>.json",
    )
    args = p.parse_args(argv)
    host = args.redis_url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].split("@")[-1]
    if host not in ("127.0.0.1", "localhost"):
        p.error("loopback Redis only")
    if args.clients < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("clients, rate and duration must be positive")
    if args.duration > 60:
        p.error("duration is bounded to 60 s")
    if args.mode == "orders" and args.target == "baseline":
        p.error("--mode orders measures the hub")
    return args


def targets_of(args: argparse.Namespace) -> list[str]:
    return ["baseline", "hub"] if args.target == "both" else [args.target]


def ratio(hub: float | None, base: float | None) -> float | None:
    return round(hub / base, 2) if hub is not None and base else None


def compare(base: dict[str, Any], hub: dict[str, Any]) -> dict[str, Any]:
    """hub / baseline for the headline figures of one N x R."""
    lb, lh = base["latency_ms"], hub["latency_ms"]
    return {
        "clients": hub["params"]["clients"],
        "rate": hub["params"]["rate"],
        "deliveries_per_s": [base["delivery"]["deliveries_per_s"], hub["delivery"]["deliveries_per_s"]],
        "deliveries_per_s_ratio": ratio(hub["delivery"]["deliveries_per_s"], base["delivery"]["deliveries_per_s"]),
        "p99_other_instances_ms": [lb["other_instances"]["p99_ms"], lh["other_instances"]["p99_ms"]],
        "p99_other_ratio": ratio(lh["other_instances"]["p99_ms"], lb["other_instances"]["p99_ms"]),
        "p99_overall_ms": [lb["overall"]["p99_ms"], lh["overall"]["p99_ms"]],
        "lost": [base["delivery"]["lost"], hub["delivery"]["lost"]],
        "kb_per_connection": [
            [s.get("kb_per_connection") for s in base["servers"]],
            [s.get("kb_per_connection") for s in hub["servers"]],
        ],
        "server_cpu_us_per_delivery": [base["server_cpu_us_per_delivery"], hub["server_cpu_us_per_delivery"]],
        "note": "pairs are [baseline, hub]; ratio = hub / baseline",
    }


def saturation(cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The cell with the highest deliveries/s at < 0.1 % loss (None: every cell lost more)."""
    fine = [c for c in cells if c["delivery"]["expected"] and (c["delivery"]["loss_pct"] or 0.0) < 0.1]
    if not fine:
        return None
    best = max(fine, key=lambda c: c["delivery"]["deliveries_per_s"] or 0.0)
    return {
        "rate": best["params"]["rate"],
        "achieved_order_rate": best["emit"]["achieved_rate"],
        "deliveries_per_s": best["delivery"]["deliveries_per_s"],
        "p99_other_instances_ms": best["latency_ms"]["other_instances"]["p99_ms"],
        "limited_by_highest_rate_tried": best["params"]["rate"] == max(c["params"]["rate"] for c in cells),
    }


def brief(r: dict[str, Any]) -> dict[str, Any]:
    """One matrix cell in a few numbers (the full result is kept too)."""
    d, lat = r["delivery"], r["latency_ms"]
    return {
        "target": r["target"],
        "clients": r["params"]["clients"],
        "rate": r["params"]["rate"],
        "achieved_rate": r["emit"]["achieved_rate"],
        "orders_ok": r["emit"]["orders_ok"],
        "deliveries_per_s": d["deliveries_per_s"],
        "loss_pct": d["loss_pct"],
        "dup": d["duplicates"],
        "gaps": d["gaps"],
        "p50_ms": lat["overall"]["p50_ms"],
        "p99_ms": lat["overall"]["p99_ms"],
        "p99_other_ms": lat["other_instances"]["p99_ms"],
        "max_ms": lat["overall"]["max_ms"],
        "server_cpu_pct": [(s.get("cpu_load_phase") or {}).get("core_pct") for s in r["servers"]],
        "foreign_cpu_pct": r["foreign_cpu_load_phase"]["core_pct"],
    }


async def run_matrix(args: argparse.Namespace) -> dict[str, Any]:
    cells: list[dict[str, Any]] = []
    for name in targets_of(args):
        for n in args.matrix_clients:
            cell_args = argparse.Namespace(**{**vars(args), "clients": n})
            bench = await setup(cell_args, name)
            try:
                for rate in args.matrix_rates:
                    r = await load_phase(bench, float(rate), args.duration)
                    cells.append(r)
                    print(json.dumps(brief(r)), file=sys.stderr, flush=True)
                    if not args.no_save:  # a long sweep keeps what it measured, whatever happens next
                        RESULTS_DIR.mkdir(exist_ok=True)
                        partial = RESULTS_DIR / f"matrix-partial{'-' + args.tag if args.tag else ''}.jsonl"
                        with partial.open("a") as f:
                            f.write(json.dumps(brief(r)) + "\n")
            finally:
                await teardown(bench)
    sat: dict[str, dict[str, Any]] = {}
    for name in targets_of(args):
        sat[name] = {}
        for n in args.matrix_clients:
            mine = [c for c in cells if c["target"] == name and c["params"]["clients"] == n]
            sat[name][str(n)] = saturation(mine)
    return {"mode": "matrix", "cells": [brief(c) for c in cells], "saturation": sat, "full": cells}


async def run_orders(args: argparse.Namespace) -> dict[str, Any]:
    """Order placement throughput on the embedded database: POST /orders at ``rate`` on instance A,
    no dashboards connected (their cost is the fan-out benchmark's)."""
    target = make_target(args, "hub")
    markets = [f"bench-m{i + 1}" for i in range(args.markets)]
    try:
        await target.start()
        async with aiohttp.ClientSession() as s:
            await target.prepare(s, markets, 0)
        pids = {f"server{i}": pid for i, pid in enumerate(target.server_pids())}
        pids.update(target.aux_pids())
        pids["runner"] = os.getpid()
        s0 = snapshot(pids)
        busy0 = system_busy()
        outcomes, t0, t1 = await emit_orders(target, markets, args.rate, args.duration, args.max_inflight)
        s1 = snapshot(pids)
        busy1 = system_busy()
    finally:
        await target.stop()
    ok = [o for o in outcomes if o.ok]
    rtt = Histogram()
    for o in ok:
        rtt.add(o.rtt_ms)
    wall = t1 - t0
    cpu = cpu_delta(s0, s1, wall)
    ours = sum(v["cpu_s"] for k, v in cpu.items() if k != "redis-server")
    return {
        "mode": "orders",
        "params": {
            "rate": args.rate,
            "duration_s": args.duration,
            "max_inflight": args.max_inflight,
            "instances": args.instances,
            "markets": args.markets,
        },
        "orders_sent": len(outcomes),
        "orders_ok": len(ok),
        "errors": sorted({f"{o.status}:{o.error}" for o in outcomes if not o.ok}),
        "orders_per_s": round(len(ok) / wall, 1) if wall > 0 else None,
        "achieved_send_rate": achieved_rate(outcomes, args.rate),
        "request_ms": rtt.summary(),
        "cpu": cpu,
        "cpu_ms_per_order": {name: round(1000 * v["cpu_s"] / len(ok), 2) for name, v in cpu.items()} if ok else None,
        "foreign_cpu_core_pct": round(100.0 * max(0.0, (busy1[0] - busy0[0]) - ours) / wall, 1) if wall else None,
    }


def save(args: argparse.Namespace, kind: str, payload: dict[str, Any]) -> None:
    if args.no_save:
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    tag = f"-{args.tag}" if args.tag else ""
    path = RESULTS_DIR / f"{kind}{tag}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {path}", file=sys.stderr)


def matrix_table(m: dict[str, Any]) -> str:
    head = f"{'target':<9}{'N':>6}{'R':>6}{'ach/s':>8}{'deliv/s':>10}{'loss%':>8}{'p50':>8}{'p99':>8}{'p99 B':>8}"
    lines = [head + f"{'max':>9}  server %core   foreign%"]
    for c in m["cells"]:
        lines.append(
            f"{c['target']:<9}{c['clients']:>6}{c['rate']:>6.0f}{c['achieved_rate']:>8}{c['deliveries_per_s']:>10}"
            f"{c['loss_pct']!s:>8}{c['p50_ms']!s:>8}{c['p99_ms']!s:>8}{c['p99_other_ms']!s:>8}{c['max_ms']!s:>9}"
            f"  {c['server_cpu_pct']!s:<13}{c['foreign_cpu_pct']}"
        )
    lines.append("saturation (highest deliveries/s with < 0.1 % loss):")
    for name, by_n in m["saturation"].items():
        for n, sat in by_n.items():
            lines.append(f"  {name} N={n}: {sat}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        if args.mode == "matrix":
            return await run_matrix(args)
        if args.mode == "orders":
            return await run_orders(args)
        results = {name: await run(args, name) for name in targets_of(args)}
        if len(results) == 1:
            return next(iter(results.values()))
        return {"mode": "both", **results, "ratio": compare(results["baseline"], results["hub"])}

    try:
        result = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; all started processes were stopped", file=sys.stderr)
        return 130
    if args.mode == "matrix":
        full = result.pop("full")
        print(json.dumps(result, separators=(",", ":")), flush=True)
        print(matrix_table(result), file=sys.stderr, flush=True)
        save(args, "matrix", {**result, "full": full})
    elif args.mode == "orders":
        print(json.dumps(result, separators=(",", ":")), flush=True)
        save(args, "orders", result)
    elif result.get("mode") == "both":
        print(json.dumps(result, separators=(",", ":")), flush=True)
        for name in ("baseline", "hub"):
            print(human_table(result[name]) + "\n", file=sys.stderr, flush=True)
        print(json.dumps(result["ratio"], indent=1), file=sys.stderr)
        save(args, "both", result)
    else:
        print(json.dumps(result, separators=(",", ":")), flush=True)
        print(human_table(result), file=sys.stderr, flush=True)
        save(args, args.target, result)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
