#!/usr/bin/env bash
# A/B file replay of several diffmill binaries in one run (issue #14): each round runs
# every binary once, in turn, over the same input, so they all see the same load. Prints
# each run (wall s, CPU s, peak RSS, load average before it) and, per binary, the median
# wall and CPU time and their ratio to the first binary's.
#
#   scripts/ab_replay.sh DATA_DIR BINARY...          # e.g. a copy of the old build first
#   RUNS=5 WORKERS=2 GRAPH=graphs/replay_files.toml scripts/ab_replay.sh data old new
#
# DATA_DIR holds the files of `diffmill gen --graph graphs/replay_files.toml`. Each run's
# output goes to a scratch folder, removed after the run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
data=$1
shift
runs=${RUNS:-3}
workers=${WORKERS:-1}
graph=${GRAPH:-graphs/replay_files.toml}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
events=$(($(cat "$data"/*.csv | wc -l) - $(ls "$data"/*.csv | wc -l)))
echo "input: $events events, $workers worker(s), $runs rounds, $(nproc) cores"

declare -A walls cpus
for round in $(seq "$runs"); do
    for bin in "$@"; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$bin" run "$graph" --input "$data" \
            --output "$work/out" --status-every 0 -w "$workers" >/dev/null 2>"$work/err"
        read -r wall user sys rss <"$work/time"
        cpu=$(echo "$user + $sys" | bc -l)
        rm -rf "$work/out"
        walls[$bin]+="$wall "
        cpus[$bin]+="$cpu "
        printf 'round %d  %-40s wall %6.2f s  cpu %6.2f s  rss %5d MB  @ load %s\n' \
            "$round" "$bin" "$wall" "$cpu" $((rss / 1024)) "$load"
    done
done

first=$1
base_wall=$(median "${walls[$first]}")
base_cpu=$(median "${cpus[$first]}")
printf '%-40s %10s %12s %10s %10s %10s\n' binary "median s" "events/s" "wall ratio" "median cpu" "cpu ratio"
for bin in "$@"; do
    wall=$(median "${walls[$bin]}")
    cpu=$(median "${cpus[$bin]}")
    printf '%-40s %10.2f %12.0f %10.3f %10.2f %10.3f\n' "$bin" "$wall" \
        "$(echo "$events / $wall" | bc -l)" "$(echo "$wall / $base_wall" | bc -l)" \
        "$cpu" "$(echo "$cpu / $base_cpu" | bc -l)"
done
