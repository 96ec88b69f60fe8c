#!/usr/bin/env bash
# Is DuckDB's batch recomputation (scripts/duckdb_funnel.sql) the same funnel as diffmill's?
# Replays a folder of CSV files with diffmill, sums its change log per (window, dims), runs
# the DuckDB query over the same files and compares every row: prints `identical`, or the
# rows that differ (and exits 1). A benchmark aid for scripts/throughput_files.sh, not a test.
#
#   scripts/duckdb_check.sh DIR               # DIR from `diffmill gen --graph GRAPH`
#   GRAPH=graphs/replay_bench.toml scripts/duckdb_check.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
input=$(realpath "$1")
graph=${GRAPH:-graphs/replay_files.toml}
bin=${BIN:-target/release/diffmill}
STOP_SERVICES=()
# shellcheck source=/dev/null
source .ci/services/duckdb.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" run "$graph" --input "$input" --output "$work/diffmill" --state "$work/state" \
    --status-every 0 >"$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
"$DIFFMILL_TEST_DUCKDB_PYTHON" scripts/duckdb_funnel.py "$graph" "$input" \
    --out "$work/duckdb.csv" --check 2>"$work/duckdb.log"
cat "$work/duckdb.log"

"$DIFFMILL_TEST_DUCKDB_PYTHON" - "$work" <<'PY'
import sys
import duckdb

work = sys.argv[1]
con = duckdb.connect()
measures = ["bids", "impressions", "clicks", "conversions", "spend_micros", "revenue_micros"]
sums = ", ".join(f"sum({m})::BIGINT AS {m}" for m in measures)
con.execute(f"""
    CREATE TABLE diffmill AS
    SELECT window_start, campaign_id, region, {sums}
    FROM read_csv('{work}/diffmill/aggregates.csv', header = true, all_varchar = false,
                  types = {{'campaign_id': 'VARCHAR', 'region': 'VARCHAR'}})
    GROUP BY ALL
    HAVING {" OR ".join(f"sum({m}) <> 0" for m in measures)}
""")
con.execute(f"""
    CREATE TABLE duckdb AS
    SELECT window_start, campaign_id, region, {", ".join(measures)}
    FROM read_csv('{work}/duckdb.csv', header = true,
                  types = {{'campaign_id': 'VARCHAR', 'region': 'VARCHAR'}})
""")
key = "window_start, campaign_id, region"
differ = con.execute(f"""
    SELECT coalesce(d.window_start, q.window_start) AS window_start,
           coalesce(d.campaign_id, q.campaign_id) AS campaign_id,
           coalesce(d.region, q.region) AS region,
           {", ".join(f"d.{m} AS diffmill_{m}, q.{m} AS duckdb_{m}" for m in measures)}
    FROM diffmill d FULL OUTER JOIN duckdb q USING ({key})
    WHERE {" OR ".join(f"d.{m} IS DISTINCT FROM q.{m}" for m in measures)}
    ORDER BY ALL
""")
columns = [c[0] for c in differ.description]
rows = differ.fetchall()
count = lambda table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
total = lambda table, m: con.execute(f"SELECT sum({m}) FROM {table}").fetchone()[0]
print(f"rows (window, dims): diffmill {count('diffmill')}, duckdb {count('duckdb')}")
for m in measures:
    print(f"  {m}: diffmill {total('diffmill', m)}, duckdb {total('duckdb', m)}")
if not rows:
    print("identical")
    sys.exit(0)
print(f"{len(rows)} rows differ:")
print(",".join(columns))
for row in rows:
    print(",".join("" if v is None else str(v) for v in row))
sys.exit(1)
PY
