//! PostgreSQL helpers of the tests: a connection, and the sink's tables read back.

use diffmill::dataflow::Dim;
use postgres::{Client, NoTls};

use super::cli::CsvAggregates;

/// A connection to the test database.
pub fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).expect("the test database accepts connections")
}

/// The aggregates table keyed as `aggregates.csv` sums: `[window_start, window_end,
/// dims…]` (ms, text), the six totals.
pub fn totals(
    client: &mut impl postgres::GenericClient,
    table: &str,
    dims: &[Dim],
) -> CsvAggregates {
    let dim_columns: String = dims.iter().map(|d| format!(", {}", d.name())).collect();
    let sql = format!(
        "SELECT (extract(epoch FROM window_start) * 1000)::int8::text, \
         (extract(epoch FROM window_end) * 1000)::int8::text{dim_columns}, \
         bids, impressions, clicks, conversions, spend_micros, revenue_micros FROM {table}"
    );
    let n = 2 + dims.len();
    client
        .query(&sql, &[])
        .expect("the aggregates table reads")
        .iter()
        .map(|row| {
            let key: Vec<String> = (0..n).map(|i| row.get::<_, String>(i)).collect();
            let measures: [i64; 6] = std::array::from_fn(|i| row.get(n + i));
            (key, measures)
        })
        .collect()
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
