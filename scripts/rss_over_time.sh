#!/usr/bin/env bash
# Resident memory over a run (issue #14): runs `diffmill run GRAPH --status-every 1
# [run args]` on the release build (STATUS_EVERY seconds, default 1; do not pass
# --status-every in the run args), samples the process's VmRSS every 0.5 s (RSS_EVERY),
# pairs each status line with the sample nearest in time and appends one row per status
# line to a CSV: wall_s,records_read,held,rss_mb,label. Several runs, each with its own
# LABEL, go in one file; scripts/plot_rss.sh plots it (one line per label).
#
#   scripts/rss_over_time.sh GRAPH [run args...]
#   OUT=path.csv                # default docs/bench/rss.csv (appended to)
#   LABEL="replay, 36 h bounds" # default the graph's file name
#
#   scripts/rss_over_time.sh graphs/replay_bench.toml --input DATA --output /tmp/out --fresh
#   OUT=docs/bench/rss.csv LABEL=soak scripts/soak.sh   # the soak's generator graph
#
# Paths are taken from where it is called. Prints the run's summary and the peak sample.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,14s/^# \{0,1\}//p' "$0" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
graph=$1
shift
out=${OUT:-$root/docs/bench/rss.csv}
label=${LABEL:-$(basename "$graph")}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "rss: $graph $*, label \"$label\", $(nproc) cores (shared)"
run_sampled "$work" "$root/target/release/diffmill" run "$graph" \
    --status-every "${STATUS_EVERY:-1}" "$@"
rss_csv_append "$work" "$label" "$out"
grep -A7 '^summary' "$work/stderr"
lines=$(grep -c '^\[' "$work/stderr" || true)
peak=$(sort -k2 -n "$work/rss" | tail -1 | awk '{print int($2 / 1024)}')
echo "rss: $lines status lines appended to $out; peak sample $peak MB"
