#!/usr/bin/env bash
# Soak: the generator through many retention periods of event time, as fast as the run
# goes, sampling the records held in state (join arrangements + dedup ids, the status
# line's `held`) once a second and the process's resident memory every 0.5 s (RSS_EVERY).
# Both should level off after the first retention period instead of growing with the
# length of the run.
#
#   scripts/soak.sh [bids] [rate]     # default 3,000,000 bids at 250 bids/s of event
#                                     # time: 12,000 s (3 h 20 min) of event time
#   WORKERS=2 scripts/soak.sh
#   OUT=docs/bench/rss.csv LABEL=soak scripts/soak.sh   # rows also appended to a CSV for
#                                     # scripts/plot_rss.sh (see scripts/rss_over_time.sh)
#
# The graph: 1-minute windows, 5 minutes of allowed lateness, 10 minutes of bid and click
# retention, so the run spans about 20 retention periods. Prints a table, one row per
# sample, and the summary.
set -euo pipefail
out=${OUT:+$(realpath -m "$OUT")}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
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
run_sampled "$work" "$bin" run "$work/soak.toml" -w "$workers" --status-every 1
printf '%8s %12s %22s %12s %10s\n' "wall s" "read" "frontier (event time)" "held" "RSS MB"
status_rows "$work" | while read -r t read_total held frontier rss; do
    printf '%8s %12s %22s %12s %10s\n' "$t" "$read_total" "$frontier" "$held" "$rss"
done
if [ -n "$out" ]; then
    rss_csv_append "$work" "${LABEL:-soak}" "$out"
    echo "soak: rows appended to $out"
fi
grep -A7 '^summary' "$work/stderr"
