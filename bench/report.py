"""Markdown tables from saved results, for bench/README.md: the newest ``both-*.json`` (hub vs baseline at one N x R)
and every ``matrix-*.json`` cell (or the files given).

    python -m bench.report [bench/results/both-….json] [bench/results/matrix-….json …]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).with_name("results")


def _newest(pattern: str) -> Path | None:
    files = sorted(RESULTS_DIR.glob(pattern), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def _cpu(r: dict[str, Any], name: str) -> str:
    v = r["cpu_load_phase"].get(name)
    return f"{v['core_pct']:.0f}" if v else "-"


def both_table(both: dict[str, Any]) -> str:
    base, hub, ratio = both["baseline"], both["hub"], both["ratio"]
    rows: list[tuple[str, Any, Any, Any]] = []

    def add(label: str, b: Any, h: Any, rt: Any = "") -> None:
        rows.append((label, b, h, rt))

    d_b, d_h = base["delivery"], hub["delivery"]
    add("deliveries/s", d_b["deliveries_per_s"], d_h["deliveries_per_s"], ratio["deliveries_per_s_ratio"])
    add("orders ok / planned", f"{base['emit']['orders_ok']}/{base['emit']['orders_planned']}",
        f"{hub['emit']['orders_ok']}/{hub['emit']['orders_planned']}")  # fmt: skip
    add("lost / duplicates / gaps", f"{d_b['lost']} / {d_b['duplicates']} / {d_b['gaps']}",
        f"{d_h['lost']} / {d_h['duplicates']} / {d_h['gaps']}")  # fmt: skip
    for key, label in (("overall", "all clients"), ("other_instances", "clients on B")):
        lb, lh = base["latency_ms"][key], hub["latency_ms"][key]
        add(
            f"latency {label} p50/p90/p99/max ms",
            f"{lb['p50_ms']}/{lb['p90_ms']}/{lb['p99_ms']}/{lb['max_ms']}",
            f"{lh['p50_ms']}/{lh['p90_ms']}/{lh['p99_ms']}/{lh['max_ms']}",
            f"p99 {round(lh['p99_ms'] / lb['p99_ms'], 2)}" if lb["p99_ms"] and lh["p99_ms"] else "",
        )
    add("time to connect N (s)", base["connect"]["time_to_connect_all_s"], hub["connect"]["time_to_connect_all_s"])
    for i in range(len(hub["servers"])):
        sb, sh = base["servers"][i], hub["servers"][i]
        add(
            f"instance {'AB'[i] if i < 2 else i}: RSS before/after connect MB, KB/conn",
            f"{sb.get('rss_before_mb')}/{sb.get('rss_after_connect_mb')}, {sb.get('kb_per_connection')}",
            f"{sh.get('rss_before_mb')}/{sh.get('rss_after_connect_mb')}, {sh.get('kb_per_connection')}",
        )
    add("server CPU µs per delivery", base["server_cpu_us_per_delivery"], hub["server_cpu_us_per_delivery"],
        ratio_of(hub["server_cpu_us_per_delivery"], base["server_cpu_us_per_delivery"]))  # fmt: skip
    names = ["server0", "server1", "nx-27017", "redis-server", "loadgen0", "loadgen1", "runner"]
    add("% of a core: " + " / ".join(names), " / ".join(_cpu(base, n) for n in names),
        " / ".join(_cpu(hub, n) for n in names))  # fmt: skip
    add(
        "foreign CPU (% of a core)",
        base["foreign_cpu_load_phase"]["core_pct"],
        hub["foreign_cpu_load_phase"]["core_pct"],
    )
    lines = ["| | baseline | hub | hub / baseline |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def ratio_of(a: float | None, b: float | None) -> float | str:
    return round(a / b, 2) if a is not None and b else ""


def matrix_table(files: list[Path]) -> str:
    lines = [
        "| target | N | R offered | orders/s achieved | deliveries/s | loss % | p50 ms | p99 ms (B) "
        "| server % core | foreign % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cells = []
    for path in files:
        cells += json.loads(path.read_text())["cells"]
    cells.sort(key=lambda c: (c["clients"], c["rate"], c["target"]))
    for c in cells:
        lines.append(
            f"| {c['target']} | {c['clients']} | {c['rate']:.0f} | {c['achieved_rate']} | {c['deliveries_per_s']} | "
            f"{c['loss_pct']} | {c['p50_ms']} | {c['p99_other_ms']} | {c['server_cpu_pct']} | {c['foreign_cpu_pct']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("files", nargs="*", type=Path)
    args = p.parse_args(argv)
    both = [f for f in args.files if f.name.startswith("both")] or [x for x in [_newest("both-*.json")] if x]
    matrices = [f for f in args.files if f.name.startswith("matrix")] or sorted(RESULTS_DIR.glob("matrix-*.json"))
    for path in both:
        print(f"{path.name}\n\n{both_table(json.loads(path.read_text()))}\n")
    if matrices:
        print(f"{', '.join(m.name for m in matrices)}\n\n{matrix_table(matrices)}")


if __name__ == "__main__":
    main()
