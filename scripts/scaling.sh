#!/usr/bin/env bash
# Scaling of a file replay: 1 worker, 2 workers (threads), and 2 processes x 1 worker
# (timely's TCP cluster on 127.0.0.1). Prints the median of RUNS runs per shape.
#
#   scripts/scaling.sh [bids]        # default 3,000,000 bids (about 5.2 M events)
#   RUNS=5 scripts/scaling.sh 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
bids=${1:-3000000}
runs=${RUNS:-3}
cargo build --release --quiet
bin=target/release/diffmill
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" gen --out "$work/data" --bids "$bids" --rate 1000 --graph graphs/replay_files.toml >/dev/null
events=$(cat "$work"/data/*.csv | wc -l)
events=$((events - $(ls "$work"/data/*.csv | wc -l)))
echo "input: $events events in $(ls "$work"/data/*.csv | wc -l) files, $(nproc) cores"

run_once() { # $1 = shape; prints seconds
    local start end
    start=$(date +%s.%N)
    case $1 in
        w1) "$bin" run graphs/replay_files.toml --input "$work/data" --output "$work/out" \
                --status-every 0 -w 1 2>/dev/null ;;
        w2) "$bin" run graphs/replay_files.toml --input "$work/data" --output "$work/out" \
                --status-every 0 -w 2 2>/dev/null ;;
        p2) "$bin" run graphs/replay_files.toml --input "$work/data" --output "$work/out-1" \
                --status-every 0 -w 1 -n 2 -p 1 >/dev/null 2>&1 &
            local other=$!
            "$bin" run graphs/replay_files.toml --input "$work/data" --output "$work/out" \
                --status-every 0 -w 1 -n 2 -p 0 >/dev/null 2>&1
            wait "$other" ;;
    esac
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

printf '%-28s %10s %14s %s\n' shape "median s" "events/s" "runs (s)"
for shape in w1 w2 p2; do
    times=()
    for _ in $(seq "$runs"); do times+=("$(run_once $shape)"); done
    median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    label=$(case $shape in w1) echo "1 process x 1 worker";; w2) echo "1 process x 2 workers";;
            p2) echo "2 processes x 1 worker";; esac)
    printf '%-28s %10.2f %14.0f %s\n' "$label" "$median" "$(echo "$events / $median" | bc -l)" \
        "$(printf '%.2f ' "${times[@]}")"
done
