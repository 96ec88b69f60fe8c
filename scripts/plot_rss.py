#!/usr/bin/env python3
"""Plot resident memory against records read, from docs/bench/rss.csv (rss_over_time.sh).

Writes docs/bench/rss.png: above, RSS (MB) against records read, one line per label (one
run); below, the records held in state (join arrangements and dedup ids) on the same axis.
Needs matplotlib: run it through scripts/plot_rss.sh, which sets up the repository's own
.venv-plot with it.

    scripts/plot_rss.sh [csv] [png]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

source = sys.argv[1] if len(sys.argv) > 1 else "docs/bench/rss.csv"
target = sys.argv[2] if len(sys.argv) > 2 else "docs/bench/rss.png"

runs = {}  # label -> rows, in the order the runs were appended
with open(source, newline="") as f:
    for row in csv.DictReader(f):
        if row["rss_mb"] != "-":
            runs.setdefault(row["label"], []).append(row)
if not runs:
    sys.exit(f"plot_rss: no samples in {source}")

fig, (rss_ax, held_ax) = plt.subplots(
    2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
)
for label, rows in runs.items():
    read = [int(r["records_read"]) / 1e6 for r in rows]
    rss = [int(r["rss_mb"]) for r in rows]
    held = [int(r["held"]) / 1e6 for r in rows]
    (line,) = rss_ax.plot(read, rss, label=f"{label} (peak {max(rss):,} MB)")
    held_ax.plot(read, held, color=line.get_color(), label=label)
rss_ax.set_ylabel("resident memory (MB)")
rss_ax.set_ylim(bottom=0)
rss_ax.set_title("diffmill run: resident memory and state held vs records read")
rss_ax.legend(fontsize=8)
held_ax.set_ylabel("records held in state (millions)")
held_ax.set_xlabel("records read (millions, all streams)")
held_ax.set_ylim(bottom=0)
for ax in (rss_ax, held_ax):
    ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(target, dpi=120)
print(f"wrote {target}")
