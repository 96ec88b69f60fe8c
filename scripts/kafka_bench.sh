#!/usr/bin/env bash
# Kafka-in to Kafka-out throughput: generated events produced into four topics
# (4 partitions each), then `graphs/kafka_funnel.toml` (rewritten for the broker, a fresh
# topic prefix and consumer group per run, start = earliest, stop_at_end) with 1 and 2
# workers, to a transactional sink topic. Prints the median of RUNS runs per shape:
# events read / wall time of the run (consumer start to the last transaction).
#
#   KAFKA_BROKERS=host:port scripts/kafka_bench.sh [bids]     # default 100,000 bids
#   (or: STOP_SERVICES=(); source .ci/services/kafka.sh; scripts/kafka_bench.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KAFKA_BROKERS:?set KAFKA_BROKERS (source .ci/services/kafka.sh starts a broker)}"
bids=${1:-100000}
runs=${RUNS:-3}
cargo build --release --quiet
bin=target/release/diffmill
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="bench-$$-"
"$bin" gen --kafka "$KAFKA_BROKERS" --topic-prefix "$prefix" --kafka-partitions 4 \
    --partitions 4 --format json --bids "$bids" --seed 3 2>"$work/gen.log"
cat "$work/gen.log"
events=$(sed -n 's/^produced \([0-9]*\) messages.*/\1/p' "$work/gen.log")
echo "input: $events events in 4 topics x 4 partitions, $(nproc) cores"

run_once() { # $1 = workers, $2 = run id; prints seconds
    local graph="$work/g$1-$2.toml" start end
    sed -e "s/127.0.0.1:9092/$KAFKA_BROKERS/" \
        -e "s/^topic_prefix = .*/topic_prefix = \"$prefix\"/" \
        -e "s/^group_id = .*/group_id = \"${prefix}w$1-$2\"/" \
        -e 's/^start = .*/start = "earliest"/' \
        -e "s/^topic = .*/topic = \"${prefix}out-w$1-$2\"/" \
        -e '/^dead_letter_topic/d' -e '/^late_topic/d' \
        graphs/kafka_funnel.toml | awk '/^\[\[sink\]\]/{n++} n<2' >"$graph"
    start=$(date +%s.%N)
    "$bin" run "$graph" --status-every 0 -w "$1" >/dev/null 2>"$work/run.log" ||
        { cat "$work/run.log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

for workers in 1 2; do
    times=()
    for run in $(seq "$runs"); do times+=("$(run_once "$workers" "$run")"); done
    median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")
    printf 'workers %s: runs %s s; median %.2f s = %.0f events/s\n' "$workers" \
        "${times[*]}" "$median" "$(echo "$events / $median" | bc -l)"
done
