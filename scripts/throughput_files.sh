#!/usr/bin/env bash
# End-to-end throughput of a file replay (issues #6, #14): `gen` about 10 M events to CSV
# files, then time `run $GRAPH` over them at 1 and 2 workers, and DuckDB's batch
# recomputation of the same funnel over the same files (scripts/duckdb_funnel.sql: DuckDB
# reads the CSV and computes the final aggregates as one query; its result equals the sum of
# diffmill's change log, checked by scripts/duckdb_check.sh). Prints the median of RUNS runs
# of each, with the load average before each run and each run's peak RSS, and the ratio of
# diffmill's events/s to DuckDB's.
#
#   scripts/throughput_files.sh [bids]     # default 5,800,000 bids (about 10 M events)
#   RUNS=5 scripts/throughput_files.sh
#   GRAPH=graphs/replay_bench.toml scripts/throughput_files.sh   # without checkpoints
#   INPUT=/path/to/folder scripts/throughput_files.sh            # files already generated
#   DUCKDB_THREADS=2                                             # default: nproc
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
bids=${1:-5800000}
runs=${RUNS:-3}
graph=${GRAPH:-graphs/replay_files.toml}
threads=${DUCKDB_THREADS:-$(nproc)}
cargo build --release --quiet
bin=target/release/diffmill
STOP_SERVICES=()
# shellcheck source=/dev/null
source .ci/services/duckdb.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${INPUT:-}" ]; then
    data=$(realpath "$INPUT")
else
    data="$work/data"
    "$bin" gen --out "$data" --bids "$bids" --rate 1000 --graph "$graph" >/dev/null
fi
files=$(ls "$data"/*.csv | wc -l)
events=$(cat "$data"/*.csv | wc -l)
events=$((events - files))
echo "input: $events events in $files files, $(nproc) cores, graph $graph"


timed() { # runs "$@"; prints "seconds load peak_rss_mb"
    local start end load
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>"$work/stderr" ||
        { cat "$work/stderr" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc -l) $load $(($(tail -1 "$work/rss") / 1024))"
}

declare -A rates
printf '%-8s %10s %14s %14s %s\n' workers "median s" "events/s" "per worker" \
    "runs (s @ load, peak RSS MB)"
for workers in 1 2; do
    times=()
    notes=()
    for _ in $(seq "$runs"); do
        read -r seconds load rss < <(timed "$bin" run "$graph" --input "$data" \
            --output "$work/out" --status-every 0 --fresh -w "$workers")
        rm -rf "$work/out"
        times+=("$seconds")
        notes+=("$(printf '%.1f@%s,%sMB' "$seconds" "$load" "$rss")")
    done
    rate=$(echo "$events / $(median "${times[@]}")" | bc -l)
    rates[$workers]=$rate
    printf '%-8s %10.2f %14.0f %14.0f %s\n' "$workers" "$(median "${times[@]}")" "$rate" \
        "$(echo "$rate / $workers" | bc -l)" "${notes[*]}"
done

# DuckDB over the same files, the same number of times (the process, Python start and
# import included, as diffmill's runs include its start).
times=()
notes=()
for _ in $(seq "$runs"); do
    read -r seconds load rss < <(timed "$DIFFMILL_TEST_DUCKDB_PYTHON" scripts/duckdb_funnel.py \
        "$graph" "$data" --threads "$threads" --out "$work/duckdb.csv")
    times+=("$seconds")
    notes+=("$(printf '%.1f@%s,%sMB' "$seconds" "$load" "$rss")")
done
duckdb_rate=$(echo "$events / $(median "${times[@]}")" | bc -l)
printf '%-8s %10.2f %14.0f %14.0f %s\n' "duckdb" "$(median "${times[@]}")" "$duckdb_rate" \
    "$(echo "$duckdb_rate / $threads" | bc -l)" "${notes[*]}"
echo "duckdb: batch recomputation, $threads threads (per worker = per thread)"
for workers in 1 2; do
    printf 'ratio diffmill -w %s / duckdb events/s: %.2f\n' "$workers" \
        "$(echo "${rates[$workers]} / $duckdb_rate" | bc -l)"
done
