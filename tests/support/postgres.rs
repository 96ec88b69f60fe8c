//! PostgreSQL helpers of the tests: a connection, and the sink's tables read back.

use diffmill::declare::{Aggregate, Declaration, FunnelSpec};
use postgres::{Client, NoTls};

use super::cli::CsvAggregates;

/// A connection to the test database.
pub fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).expect("the test database accepts connections")
}

/// The aggregates table of `aggregate` keyed as `aggregates.csv` sums: `[window_start,
/// window_end, dims…]` (ms, text), then the totals of its measures.
pub fn totals(
    client: &mut impl postgres::GenericClient,
    table: &str,
    aggregate: &Aggregate,
) -> CsvAggregates {
    let dims = aggregate.dims.names();
    let measures = aggregate.measure_names();
    let dim_columns: String = dims.iter().map(|d| format!(", {d}::text")).collect();
    let sql = format!(
        "SELECT (extract(epoch FROM window_start) * 1000)::int8::text, \
         (extract(epoch FROM window_end) * 1000)::int8::text{dim_columns}, {} FROM {table}",
        measures.join(", ")
    );
    let n = 2 + dims.len();
    client
        .query(&sql, &[])
        .expect("the aggregates table reads")
        .iter()
        .map(|row| {
            let key: Vec<String> = (0..n).map(|i| row.get::<_, String>(i)).collect();
            let values: Vec<i64> = (0..measures.len()).map(|i| row.get(n + i)).collect();
            (key, values)
        })
        .collect()
}

/// The aggregate of a graph grouped by `group_by` with today's six measures.
pub fn grouped_by(group_by: &[&str]) -> Aggregate {
    let funnel = FunnelSpec {
        group_by: Some(group_by.iter().map(|d| d.to_string()).collect()),
        ..FunnelSpec::default()
    };
    Declaration::default()
        .funnel(funnel)
        .resolve()
        .expect("a valid declaration")
        .aggregates[0]
        .clone()
}

/// `(frontier_ms, batch_seq, complete)` of `sink` in `progress`.
pub fn progress(
    client: &mut impl postgres::GenericClient,
    table: &str,
    sink: &str,
) -> (i64, i64, bool) {
    let row = client
        .query_one(
            &format!("SELECT frontier_ms, batch_seq, complete FROM {table} WHERE sink = $1"),
            &[&sink],
        )
        .expect("the progress row reads");
    (row.get(0), row.get(1), row.get(2))
}
