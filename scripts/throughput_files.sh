#!/usr/bin/env bash
# End-to-end throughput of a file replay (issue #6): `gen` about 10 M events to CSV files,
# then time `run graphs/replay_files.toml` over them at 1 and 2 workers. Prints the median
# of RUNS runs per worker count, with the load average before each run.
#
#   scripts/throughput_files.sh [bids]     # default 5,800,000 bids (about 10 M events)
#   RUNS=5 scripts/throughput_files.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bids=${1:-5800000}
runs=${RUNS:-3}
cargo build --release --quiet
bin=target/release/diffmill
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" gen --out "$work/data" --bids "$bids" --rate 1000 --graph graphs/replay_files.toml >/dev/null
files=$(ls "$work"/data/*.csv | wc -l)
events=$(cat "$work"/data/*.csv | wc -l)
events=$((events - files))
echo "input: $events events in $files files, $(nproc) cores"

run_once() { # $1 = workers; prints "seconds load"
    local start end load
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    "$bin" run graphs/replay_files.toml --input "$work/data" --output "$work/out" \
        --status-every 0 -w "$1" >/dev/null 2>&1
    end=$(date +%s.%N)
    rm -rf "$work/out"
    echo "$(echo "$end - $start" | bc -l) $load"
}

printf '%-8s %10s %14s %14s %s\n' workers "median s" "events/s" "per worker" "runs (s @ load)"
for workers in 1 2; do
    times=()
    notes=()
    for _ in $(seq "$runs"); do
        read -r seconds load < <(run_once "$workers")
        times+=("$seconds")
        notes+=("$(printf '%.1f@%s' "$seconds" "$load")")
    done
    median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    rate=$(echo "$events / $median" | bc -l)
    printf '%-8s %10.2f %14.0f %14.0f %s\n' "$workers" "$median" "$rate" \
        "$(echo "$rate / $workers" | bc -l)" "${notes[*]}"
done
