"""diffmill's default funnel recomputed in batch by DuckDB over a folder of CSV files.

Runs scripts/duckdb_funnel.sql with the settings of a graph file (window, allowed
lateness, max disorder, max future skew, match bounds) and writes the final value of every
(window, campaign_id, region) as CSV. A benchmark aid (scripts/throughput_files.sh,
scripts/duckdb_check.sh), not a test.

    python scripts/duckdb_funnel.py GRAPH INPUT_DIR [--out FILE.csv] [--threads N] [--check]

--check also counts the records the query cannot treat exactly (more than
max_future_skew ahead of their partition's watermark: diffmill dead-letters them and
keeps its watermark, the query does not) and prints the count to stderr; when it is 0,
the result is exact.
Needs DuckDB's Python package: `source .ci/services/duckdb.sh`, then run with
"$DIFFMILL_TEST_DUCKDB_PYTHON".
"""

import argparse
import pathlib
import re
import sys
import tomllib

import duckdb

SQL = pathlib.Path(__file__).with_name("duckdb_funnel.sql")
UNITS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DEFAULTS = {
    "window": "15m",
    "allowed_lateness": "1h",
    "max_disorder": "5s",
    "max_future_skew": "24h",
    "bid_retention": "36h",
    "click_retention": "36h",
}

# Where the query's CTEs up to the valid records of each stream end (the --check query
# reuses them).
STREAMS_END = "-- The four streams in one shape"

# Valid records more than max_future_skew ahead of the watermark before them (the max ts
# of the valid records before them in their file, minus d). None: every valid record is
# admitted or too late, so the query's watermark is diffmill's and the result exact.
# Otherwise diffmill dead-letters them (and they do not move its watermark): not exact.
FAR_FUTURE = """
SELECT count(*) FROM (
    SELECT ts, file_index::BIGINT * 281474976710656 AS base, lag(seen) OVER () AS before
    FROM (SELECT ts, file_index, max(file_index::BIGINT * 281474976710656 + ts)
                                     OVER (ROWS UNBOUNDED PRECEDING) AS seen
          FROM {stream}_valid))
WHERE before >= base
  AND ts - greatest(before - base - getvariable('disorder_ms'), 0) > getvariable('skew_ms')
"""


def millis(text):
    """A duration such as `15m` or `36h` in ms."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    if not match:
        sys.exit(f"duckdb_funnel: cannot read the duration {text!r}")
    return int(match[1]) * UNITS[match[2]]


def settings(graph):
    """The funnel settings of a graph file, refusing what the query does not compute."""
    with open(graph, "rb") as f:
        spec = tomllib.load(f)
    unsupported = [key for key in ("aggregate", "stream", "dimensions") if key in spec]
    funnel = spec.get("funnel", {})
    if funnel.get("group_by", ["campaign_id", "region"]) != ["campaign_id", "region"]:
        unsupported.append("funnel.group_by")
    if spec.get("source", {}).get("format", "csv") != "csv":
        unsupported.append("source.format")
    if unsupported:
        sys.exit(
            f"duckdb_funnel: {graph} sets {unsupported}: "
            "only the default funnel over CSV files is computed"
        )
    value = {key: millis(funnel.get(key, default)) for key, default in DEFAULTS.items()}
    return {
        "window_ms": value["window"],
        "lateness_ms": value["allowed_lateness"],
        "disorder_ms": value["max_disorder"],
        "skew_ms": value["max_future_skew"],
        "bid_bound_ms": value["bid_retention"],
        "click_bound_ms": value["click_retention"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph")
    parser.add_argument("input")
    parser.add_argument("--out", default="/dev/null", help="CSV file for the result")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET VARIABLE input = '{pathlib.Path(args.input).resolve()}'")
    for name, value in settings(args.graph).items():
        con.execute(f"SET VARIABLE {name} = {value}::BIGINT")
    con.execute(
        "CREATE TEMP MACRO final_at(t) AS t - t % getvariable('window_ms') "
        "+ getvariable('window_ms') + getvariable('lateness_ms')"
    )
    query = SQL.read_text()
    con.execute(f"COPY ({query}) TO '{args.out}' (FORMAT csv, HEADER)")
    if args.check:
        streams = query[: query.index(STREAMS_END)].rstrip().rstrip(",")
        far = sum(
            con.execute(streams + FAR_FUTURE.format(stream=stream)).fetchone()[0]
            for stream in ("bids", "impressions", "clicks", "conversions")
        )
        verdict = "exact" if far == 0 else "NOT exact: diffmill dead-letters them"
        print(f"far_future {far} (records beyond max_future_skew: {verdict})", file=sys.stderr)


if __name__ == "__main__":
    main()
