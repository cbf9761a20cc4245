"""Plot a matrix run: deliveries/s and p99 latency against the order rate R, hub vs baseline, per N.

    python -m bench.plot [bench/results/matrix-….json …] [-o bench/results/latest.png]

The cells of all files given are drawn together (e.g. one sweep per N); without a file, the newest
``bench/results/matrix-*.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).with_name("results")
STYLE = {"hub": ("tab:blue", "o"), "baseline": ("tab:orange", "s")}
LINES = {100: ":", 1000: "-", 5000: "--", 10000: "-."}


def newest_matrix() -> Path:
    files = sorted(RESULTS_DIR.glob("matrix-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit("no bench/results/matrix-*.json: run `python -m bench.run --target both --mode matrix` first")
    return files[-1]


def plot(matrix: dict[str, Any], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells: list[dict[str, Any]] = matrix["cells"]
    fig, (ax_rate, ax_p99) = plt.subplots(1, 2, figsize=(12, 4.8))
    for target in ("baseline", "hub"):
        color, marker = STYLE[target]
        for n in sorted({c["clients"] for c in cells if c["target"] == target}):
            mine = sorted((c for c in cells if c["target"] == target and c["clients"] == n), key=lambda c: c["rate"])
            if not mine:
                continue
            rates = [c["rate"] for c in mine]
            label = f"{target} N={n}"
            style = {"color": color, "marker": marker, "linestyle": LINES.get(n, "-"), "label": label}
            ax_rate.plot(rates, [c["deliveries_per_s"] for c in mine], **style)
            ax_p99.plot(rates, [c["p99_other_ms"] or float("nan") for c in mine], **style)
            for c in mine:
                if (c["loss_pct"] or 0) >= 0.1:
                    ax_rate.annotate(f"loss {c['loss_pct']:.1f}%", (c["rate"], c["deliveries_per_s"]), fontsize=7)
                if c["achieved_rate"] < 0.9 * c["rate"]:
                    ax_rate.annotate(
                        f"{c['achieved_rate']:.0f}/s achieved",
                        (c["rate"], c["deliveries_per_s"]),
                        fontsize=7,
                        xytext=(0, -10),
                        textcoords="offset points",
                    )
    for ax in (ax_rate, ax_p99):
        ax.set_xscale("log")
        ax.set_xlabel("orders per second offered (R)")
        ax.grid(True, which="both", alpha=0.3)
    ax_rate.set_yscale("log")
    ax_rate.set_ylabel("deliveries per second")
    ax_rate.set_title("fan-out throughput")
    ax_p99.set_yscale("log")
    ax_p99.axhline(100, color="grey", linewidth=0.8)
    ax_p99.set_ylabel("p99 ms, POST on A -> event on B")
    ax_p99.set_title("end-to-end p99 (clients on instance B)")
    ax_p99.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("matrix", nargs="*", type=Path)
    p.add_argument("-o", "--out", type=Path, default=RESULTS_DIR / "latest.png")
    args = p.parse_args(argv)
    paths = args.matrix or [newest_matrix()]
    matrix = {"cells": [cell for path in paths for cell in json.loads(path.read_text())["cells"]]}
    names = ", ".join(path.name for path in paths)
    title = f"{names}\n2 instances + Redis (+ nx-27017 for the hub) + load generator on one 2-core machine"
    plot(matrix, args.out, title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
