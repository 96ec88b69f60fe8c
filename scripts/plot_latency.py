#!/usr/bin/env python3
"""Plot latency against offered rate from docs/bench/latency.csv (scripts/latency_sweep.sh).

Writes docs/bench/latency.png: p50 and p99 processing latency and p99 window latency per
offered rate, one line per worker count. Needs matplotlib: run it through
scripts/plot_latency.sh, which sets up the repository's own .venv-plot with it.

    scripts/plot_latency.sh [csv] [png]
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

source = sys.argv[1] if len(sys.argv) > 1 else "docs/bench/latency.csv"
target = sys.argv[2] if len(sys.argv) > 2 else "docs/bench/latency.png"

runs = defaultdict(list)
with open(source, newline="") as f:
    for row in csv.DictReader(f):
        runs[int(row["workers"])].append(row)

fig, ax = plt.subplots(figsize=(8, 5))
styles = {1: "tab:blue", 2: "tab:orange"}
for workers, rows in sorted(runs.items()):
    rows.sort(key=lambda r: int(r["offered"]))
    x = [int(r["offered"]) / 1000 for r in rows]
    color = styles.get(workers)
    for column, style, label in [
        ("proc_p50_ms", ":", "processing p50"),
        ("proc_p99_ms", "-", "processing p99"),
        ("window_p99_ms", "--", "window p99"),
    ]:
        ax.plot(x, [float(r[column]) for r in rows], style, marker="o", color=color,
                label=f"{workers} worker(s), {label}")
    for r in rows:
        if r["sustainable"] != "true":
            ax.plot(int(r["offered"]) / 1000, float(r["proc_p99_ms"]), "x", color="red",
                    markersize=10)
ax.axhline(50, color="grey", linewidth=0.8)
ax.axhline(100, color="grey", linewidth=0.8, linestyle="--")
ax.set_yscale("log")
ax.set_xlabel("offered rate (thousand records/s, all streams)")
ax.set_ylabel("latency (ms, log)")
ax.set_title("diffmill bench: latency vs offered rate (red x: not sustainable)")
ax.legend(fontsize=7)
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(target, dpi=120)
print(f"wrote {target}")
