#!/usr/bin/env bash
# Parquet against CSV (issue #17), in one script run on the same events:
#  1. replay throughput: `gen` the same events (same seed and settings) as CSV files and as
#     Parquet files, then time `run graphs/replay_files.toml` over each, 1 worker, runs
#     alternating between the formats; prints the median of RUNS runs per format;
#  2. sizes: the input files, and the output of one replay written at once as the CSV
#     change log and as Parquet tables in `changes` and in `final` mode.
#
#   scripts/throughput_parquet.sh [bids]    # default 5,800,000 bids (about 10 M events)
#   RUNS=5 scripts/throughput_parquet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bids=${1:-5800000}
runs=${RUNS:-3}
cargo build --release --quiet
bin=target/release/diffmill
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for format in csv parquet; do
    "$bin" gen --out "$work/$format" --format "$format" --bids "$bids" --rate 1000 \
        --graph graphs/replay_files.toml >/dev/null
done
files=$(ls "$work"/csv/*.csv | wc -l)
events=$(cat "$work"/csv/*.csv | wc -l)
events=$((events - files))
echo "input: $events events in $files files per format, $(nproc) cores"
echo "input size: csv $(du -sb "$work/csv" | cut -f1) bytes, parquet $(du -sb "$work/parquet" | cut -f1) bytes"

# The replay graph reading $1 files (its CSV sink is the same for both formats).
sed 's/^format = "csv"/format = "parquet"/' graphs/replay_files.toml >"$work/replay_parquet.toml"
graph_for() { if [ "$1" = csv ]; then echo graphs/replay_files.toml; else echo "$work/replay_parquet.toml"; fi; }

run_once() { # $1 = format; prints "seconds load"
    local start end load
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    "$bin" run "$(graph_for "$1")" --input "$work/$1" --output "$work/out" \
        --status-every 0 -w 1 >/dev/null 2>&1
    end=$(date +%s.%N)
    rm -rf "$work/out"
    echo "$(echo "$end - $start" | bc -l) $load"
}

declare -A times notes
for _ in $(seq "$runs"); do
    for format in csv parquet; do
        read -r seconds load < <(run_once "$format")
        times[$format]+="$seconds "
        notes[$format]+="$(printf '%.1f@%s ' "$seconds" "$load")"
    done
done
printf '%-8s %10s %14s %s\n' format "median s" "events/s" "runs (s @ load)"
declare -A medians
for format in csv parquet; do
    median=$(printf '%s\n' ${times[$format]} | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    medians[$format]=$median
    printf '%-8s %10.2f %14.0f %s\n' "$format" "$median" "$(echo "$events / $median" | bc -l)" \
        "${notes[$format]}"
done
printf 'parquet / csv replay time: %.2f\n' "$(echo "${medians[parquet]} / ${medians[csv]}" | bc -l)"

# Output sizes: one replay writing the CSV change log and both Parquet modes.
sizes="$work/sizes.toml"
sed '/^\[\[sink\]\]/,$d' graphs/replay_files.toml >"$sizes"
cat >>"$sizes" <<TOML
[[sink]]
kind = "csv"
path = "$work/sizes/csv"

[[sink]]
kind = "parquet"
path = "$work/sizes/changes"
mode = "changes"

[[sink]]
kind = "parquet"
path = "$work/sizes/final"
mode = "final"
TOML
sed -i 's/^emit_interval = .*/emit_interval = "1s"/' "$sizes"
"$bin" run "$sizes" --input "$work/csv" --status-every 0 >/dev/null 2>&1
count() { find "$1" -name '*.parquet' | wc -l; }
echo "output (emit_interval 1s):"
echo "  csv change log    $(stat -c %s "$work/sizes/csv/aggregates.csv") bytes, $(($(wc -l <"$work/sizes/csv/aggregates.csv") - 1)) rows"
echo "  parquet changes   $(du -sb "$work/sizes/changes/aggregates" | cut -f1) bytes in $(count "$work/sizes/changes/aggregates") files"
echo "  parquet final     $(du -sb "$work/sizes/final/aggregates" | cut -f1) bytes in $(count "$work/sizes/final/aggregates") files"
