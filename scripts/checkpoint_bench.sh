#!/usr/bin/env bash
# What checkpoints cost (issue 13): a file replay with and without checkpoints,
# alternated (medians of RUNS runs), with the size and write time of the last checkpoint;
# the time a replay killed at about 80 % takes to resume and finish; the open-loop p99
# latency with and without checkpoints.
#
#   scripts/checkpoint_bench.sh [bids]     # default 3,000,000 bids (about 5 M events)
#   RUNS=5 RATE=50000 DURATION=60s INTERVAL=10s MODES="2s 5s" scripts/checkpoint_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
bids=${1:-3000000}
runs=${RUNS:-3}
rate=${RATE:-50000}
duration=${DURATION:-60s}
interval=${INTERVAL:-10s}
modes=${MODES:-"2s 5s"}
cargo build --release --quiet
bin=target/release/diffmill
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" gen --out "$work/data" --bids "$bids" --rate 1000 --graph graphs/replay_files.toml >/dev/null
files=$(ls "$work"/data/*.csv | wc -l)
events=$(cat "$work"/data/*.csv | wc -l)
events=$((events - files))
echo "input: $events events in $files files, $(nproc) cores, 36 h match bounds (all state held)"

# The replay graph without its [state] table, and with checkpoints at each interval of
# MODES (a replay of a few seconds needs short intervals to write any).
sed '/^\[state\]/,$d' graphs/replay_files.toml >"$work/none.toml"
for every in $modes; do
    cp "$work/none.toml" "$work/$every.toml"
    printf '[state]\ndir = "%s/state-%s"\ncheckpoint_interval = "%s"\n' "$work" "$every" "$every" \
        >>"$work/$every.toml"
done

run_once() { # $1 = graph; prints "seconds load checkpoint-line"
    local start end load log
    load=$(cut -d' ' -f1 /proc/loadavg)
    rm -rf "$work/out" "$work"/state-*
    start=$(date +%s.%N)
    log=$("$bin" run "$1" --input "$work/data" --output "$work/out" --status-every 0 2>&1 >/dev/null)
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc -l) $load $(grep '^checkpoints:' <<<"$log" || echo '-')"
}


echo
echo "== file replay, 1 worker (alternated: none, ${modes// /, })"
declare -A times
for _ in $(seq "$runs"); do
    for mode in none $modes; do
        read -r seconds load rest < <(run_once "$work/$mode.toml")
        times[$mode]+="$seconds "
        printf '  %-5s %6.2f s  load %-5s %s\n' "$mode" "$seconds" "$load" "$rest"
    done
done
base=$(median "${times[none]}")
for mode in none $modes; do
    m=$(median "${times[$mode]}")
    printf '%-5s median %6.2f s  %8.0f events/s  ratio to none %.3f\n' "$mode" "$m" \
        "$(echo "$events / $m" | bc -l)" "$(echo "$m / $base" | bc -l)"
done

echo
first=${modes%% *}
echo "== restart: a $first-checkpoint replay killed at 80 % of the median time, resumed"
rm -rf "$work/out" "$work"/state-*
"$bin" run "$work/$first.toml" --input "$work/data" --output "$work/out" --status-every 0 \
    >/dev/null 2>&1 &
pid=$!
# Killed at 80 % of the median time, and not before its first checkpoint is written.
sleep "$(echo "$base * 0.8" | bc -l)"
until ls "$work/state-$first"/checkpoint-*.ckpt >/dev/null 2>&1 || ! kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
done
kill -9 "$pid" 2>/dev/null || echo "the run ended before it could be killed"
wait "$pid" 2>/dev/null || true
start=$(date +%s.%N)
log=$("$bin" run "$work/$first.toml" --input "$work/data" --output "$work/out" --status-every 0 2>&1 >/dev/null)
end=$(date +%s.%N)
grep '^state:' <<<"$log" || true
printf 'resumed and finished in %.2f s (an uninterrupted run: %.2f s)\n' \
    "$(echo "$end - $start" | bc -l)" "$base"

echo
echo "== open loop, $rate records/s, 1 worker, $duration (alternated: none, $interval)"
for round in $(seq "$runs"); do
    lines=2p
    [ "$round" = 1 ] && lines=1,2p
    "$bin" bench --rates "$rate" --duration "$duration" -w 1 2>/dev/null | sed -n "$lines" \
        | sed 's/^/  none /'
    "$bin" bench --rates "$rate" --duration "$duration" -w 1 --checkpoint-interval "$interval" \
        2>/dev/null | sed -n '2,3p' | sed "s/^/  $interval  /"
done
