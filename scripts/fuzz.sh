#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for a set time and prints its executions and
# crashes. Needs `cargo install cargo-fuzz`; on a stable toolchain the nightly flags
# cargo-fuzz uses are enabled with RUSTC_BOOTSTRAP=1.
#
#   scripts/fuzz.sh [seconds per target] [target...]   # default 60 s, all targets
#   JOBS=2 scripts/fuzz.sh 600                          # libFuzzer workers per target
#
# The corpus (fuzz/corpus/<target>) is seeded from graphs/*.toml and from a few
# generated files, and kept between runs. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(csv_file json_file graph_toml)
fi
jobs=${JOBS:-1}
export RUSTC_BOOTSTRAP=1

# Seeds: each event file is prefixed with two bytes (stream, poll size), as the targets
# read them; stream bytes follow the order of StreamKind::ALL (bid, impression, click,
# conversion).
seed() {
    local corpus=fuzz/corpus
    mkdir -p "$corpus/csv_file" "$corpus/json_file" "$corpus/graph_toml"
    cp graphs/*.toml "$corpus/graph_toml/"
    cargo build --quiet --bin diffmill
    local data
    data=$(mktemp -d)
    for format in csv json; do
        target/debug/diffmill gen --out "$data/$format" --format "$format" --bids 40 \
            --partitions 1 --graph graphs/ad_funnel.toml >/dev/null 2>&1
    done
    local i=0
    for stream in bid impression click conversion; do
        for format in csv json; do
            local ext=$format file
            [ "$format" = json ] && ext=jsonl
            file=$(ls "$data/$format/$stream"*".$ext" | head -1)
            { printf "\\x$(printf %02x $i)\\x03"; head -c 2000 "$file"; } \
                >"$corpus/${format}_file/seed-$stream"
        done
        i=$((i + 1))
    done
    rm -rf "$data"
}
seed

printf '%-12s %10s %14s %10s %8s\n' target seconds executions exec/s crashes
for target in "${targets[@]}"; do
    log=fuzz/fuzz-$target.log
    # No sanitizer: the crate forbids unsafe code; panics and broken invariants are the
    # crashes looked for (debug assertions on, so overflows panic too).
    cargo fuzz build --release --debug-assertions --sanitizer none "$target" >/dev/null 2>&1 \
        || cargo fuzz build --release --debug-assertions --sanitizer none "$target"
    parallel=()
    if [ "$jobs" -gt 1 ]; then
        parallel=(-jobs="$jobs" -workers="$jobs")
    fi
    set +e
    cargo fuzz run --release --debug-assertions --sanitizer none "$target" -- \
        -max_total_time="$seconds" "${parallel[@]}" -max_len=65536 \
        -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    # With -jobs, each job logs to fuzz-<n>.log in the working directory.
    job_logs=(fuzz-[0-9]*.log)
    execs=$(awk '/^stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$log" \
        "${job_logs[@]}")
    crashes=$({ ls fuzz/artifacts/"$target" 2>/dev/null || true; } | wc -l)
    printf '%-12s %10s %14s %10s %8s\n' "$target" "$seconds" "$execs" \
        "$((execs / (seconds > 0 ? seconds : 1)))" "$crashes"
    rm -f fuzz-[0-9]*.log
    if [ "$status" -ne 0 ]; then
        echo "  $target stopped with status $status; see $log and fuzz/artifacts/$target/" >&2
    fi
done
