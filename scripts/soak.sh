#!/usr/bin/env bash
# Soak: the generator through many retention periods of event time, as fast as the run
# goes, sampling the records held in state (join arrangements + dedup ids, the status
# line's `held`) and the process's resident memory once a second. Both should level off
# after the first retention period instead of growing with the length of the run.
#
#   scripts/soak.sh [bids] [rate]     # default 3,000,000 bids at 250 bids/s of event
#                                     # time: 12,000 s (3 h 20 min) of event time
#   WORKERS=2 scripts/soak.sh
#
# The graph: 1-minute windows, 5 minutes of allowed lateness, 10 minutes of bid and click
# retention, so the run spans about 20 retention periods. Prints a table, one row per
# sample, and the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bids=${1:-3000000}
rate=${2:-250}
workers=${WORKERS:-1}
cargo build --release --quiet --bin diffmill
bin=target/release/diffmill
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/soak.toml" <<TOML
name = "soak"
description = "many retention periods of generated events"

[source]
kind = "generator"
seed = 7
bids = $bids
rate = $rate
partitions = 4
disorder = 0.05
late = 0.002
too_late = 0.0005
duplicate = 0.002
conflicting = 0.0005
orphan = 0.001
malformed = 0.0005

[funnel]
window = "1m"
group_by = ["campaign_id", "region"]
max_disorder = "5s"
allowed_lateness = "5m"
bid_retention = "10m"
click_retention = "10m"
emit_interval = "1s"

[[sink]]
kind = "csv"
path = "$work/out"
TOML
echo "soak: $bids bids at $rate/s of event time ($((bids / rate)) s), retention 10 min," \
    "$workers worker(s), $(nproc) cores (shared)"
"$bin" run "$work/soak.toml" -w "$workers" --status-every 1 2>"$work/stderr" >/dev/null &
pid=$!
: >"$work/rss"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    echo "$(date +%s.%N) ${rss:-0}" >>"$work/rss"
    sleep 1
done
wait "$pid"
start=$(head -1 "$work/rss" | cut -d' ' -f1)
# Status lines: [ 12.0s] in: bid B, impression I, click C, conversion V · ... · held H ·
# frontier 2024-01-01T00:00:00Z ... Each is paired with the RSS sample nearest in time.
printf '%8s %12s %22s %12s %10s\n' "wall s" "read" "frontier (event time)" "held" "RSS MB"
grep '^\[' "$work/stderr" | while IFS= read -r line; do
    t=$(sed -E 's/^\[ *([0-9.]+)s\].*/\1/' <<<"$line")
    read_total=$(sed -E 's/.*in: bid ([0-9]+), impression ([0-9]+), click ([0-9]+), conversion ([0-9]+).*/\1 \2 \3 \4/' <<<"$line" \
        | awk '{print $1 + $2 + $3 + $4}')
    held=$(sed -E 's/.* held (-?[0-9]+) .*/\1/' <<<"$line")
    frontier=$(sed -nE 's/.* frontier ([^ ]+) .*/\1/p' <<<"$line")
    rss=$(awk -v s="$start" -v t="$t" 'BEGIN {best = -1} {d = $1 - s - t; if (d < 0) d = -d; if (best < 0 || d < best) {best = d; r = $2}} END {print int(r / 1024)}' "$work/rss")
    printf '%8s %12s %22s %12s %10s\n' "$t" "$read_total" "${frontier:--}" "$held" "$rss"
done
grep -A7 '^summary' "$work/stderr"
