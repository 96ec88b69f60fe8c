#!/usr/bin/env bash
# Latency against offered rate (issue #6): runs `diffmill bench` over RATES at 1 and 2
# workers and appends one row per run to docs/bench/latency.csv (or $CSV), which
# scripts/plot_latency.sh turns into docs/bench/latency.png.
#
#   scripts/latency_sweep.sh
#   RATES=50000,100000,200000 DURATION=30s scripts/latency_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rates=${RATES:-25000,50000,100000,150000,200000,300000,400000}
duration=${DURATION:-20s}
csv=${CSV:-docs/bench/latency.csv}
cargo build --release --quiet
mkdir -p "$(dirname "$csv")"
rm -f "$csv"
for workers in 1 2; do
    echo "== $workers worker(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    target/release/diffmill bench --rates "$rates" --duration "$duration" -w "$workers" \
        --csv "$csv"
done
echo "wrote $csv"
