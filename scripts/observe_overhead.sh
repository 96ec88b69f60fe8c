#!/usr/bin/env bash
# Cost of observing a run (issue #15): the same file replay with and without
# `--metrics-addr`, alternated, RUNS times each; with metrics on, /metrics is scraped
# every second while the run lasts (as an impatient Prometheus would). Prints each run's
# wall time and CPU time (user + system: less disturbed by other load on a shared
# machine), the medians, and their ratios.
#
#   scripts/observe_overhead.sh [bids] [workers]   # default 1,000,000 bids, 2 workers
#   RUNS=7 scripts/observe_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bids=${1:-1000000}
workers=${2:-2}
runs=${RUNS:-5}
cargo build --release --quiet
bin=target/release/diffmill
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" gen --out "$work/data" --bids "$bids" --rate 1000 --graph graphs/replay_files.toml >/dev/null
files=$(ls "$work"/data/*.csv | wc -l)
events=$(($(cat "$work"/data/*.csv | wc -l) - files))
echo "input: $events events in $files files, $workers workers, $(nproc) cores"

run_once() { # $1 = off|on; prints "wall_seconds cpu_seconds load"
    local load port scraper=""
    load=$(cut -d' ' -f1 /proc/loadavg)
    local observe=()
    if [ "$1" = on ]; then
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        observe=(--metrics-addr "127.0.0.1:$port" --linger 0s)
        (while sleep 1; do curl -s "http://127.0.0.1:$port/metrics" >/dev/null || true; done) &
        scraper=$!
    fi
    /usr/bin/time -f "%e %U %S" -o "$work/time" "$bin" run graphs/replay_files.toml \
        --input "$work/data" --output "$work/out" --status-every 0 -w "$workers" \
        "${observe[@]}" >/dev/null 2>&1
    [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
    rm -rf "$work/out"
    read -r wall user system <"$work/time"
    echo "$wall $(echo "$user + $system" | bc -l) $load"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

off=(); on=(); cpu_off=(); cpu_on=()
for i in $(seq "$runs"); do
    for mode in off on; do
        read -r wall cpu load < <(run_once "$mode")
        printf 'run %d metrics %-3s wall %7.2f s  cpu %7.2f s  (load %s)\n' "$i" "$mode" "$wall" "$cpu" "$load"
        if [ "$mode" = off ]; then off+=("$wall"); cpu_off+=("$cpu"); else on+=("$wall"); cpu_on+=("$cpu"); fi
    done
done
m_off=$(median "${off[@]}"); m_on=$(median "${on[@]}")
c_off=$(median "${cpu_off[@]}"); c_on=$(median "${cpu_on[@]}")
printf 'median wall: without metrics %.2f s (%.0f events/s), with %.2f s (%.0f events/s), ratio on/off %.3f\n' \
    "$m_off" "$(echo "$events / $m_off" | bc -l)" "$m_on" "$(echo "$events / $m_on" | bc -l)" \
    "$(echo "$m_on / $m_off" | bc -l)"
printf 'median cpu:  without metrics %.2f s, with %.2f s, ratio on/off %.3f\n' \
    "$c_off" "$c_on" "$(echo "$c_on / $c_off" | bc -l)"
