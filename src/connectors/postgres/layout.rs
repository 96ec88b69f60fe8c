//! The tables the PostgreSQL sink writes, and the SQL that reads and writes them.
//!
//! The aggregates table holds one row per `(window_start, dims…)` with the aggregate's
//! declared measures as totals (the sum of all diffs applied so far), the status of the window's last
//! change (`open`, `closed`, `correction`, or `final` once the window is final) and the
//! frontier of the batch that changed it last (`NULL` once the input was complete). Dims
//! are `text`, written as in the CSV sink: ids in decimal, `unattributed` for every dim
//! of an unattributed row. A row whose totals all return to zero (e.g. children moved
//! out of *unattributed*) is deleted.
//!
//! The progress table holds one row per sink: the frontier (ms) of the last batch
//! applied, how many batches were applied, and whether the input was complete.
//!
//! The rejected records of each batch are appended, in the batch's transaction, to two
//! tables named after the aggregates table: `<table>_dead_letters` (records that failed
//! to parse or validate: stream, origin, reason, raw text) and `<table>_too_late`
//! (records too late to apply: stream, origin, id, event time, the watermark they were
//! judged against, reason). Each row also carries the batch's number (as in the progress
//! table: batches applied before it, over all runs) and frontier (`NULL` for the batch
//! of a complete input). Batches skipped on resume are skipped here too, so every
//! rejected record is there once.

use std::fmt::Write;

use super::config::PostgresConfig;
use crate::connectors::{AggregateRow, Batch};
use crate::declare::Aggregate;

/// The batch's rows are copied into this session-local table first.
const STAGING: &str = "pg_temp.diffmill_batch";

/// The batch's dead letters are copied into this session-local table first.
const STAGING_DEAD: &str = "pg_temp.diffmill_batch_dead_letters";

/// The batch's too-late records are copied into this session-local table first.
const STAGING_LATE: &str = "pg_temp.diffmill_batch_too_late";

/// Appended to the aggregates table's name: the dead-letter table.
pub const DEAD_LETTERS_SUFFIX: &str = "_dead_letters";

/// Appended to the aggregates table's name: the too-late table.
pub const TOO_LATE_SUFFIX: &str = "_too_late";

/// `ms` (a bigint of ms since the epoch) as a `timestamptz`, exactly.
fn at(ms: &str) -> String {
    format!("(timestamptz 'epoch' + ({ms})::int8 * interval '1 millisecond')")
}

/// The tables of one sink and every statement it runs, built once from the config and
/// the aggregate's declaration.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `schema`.
    pub schema: String,
    /// `schema.table`.
    pub aggregates: String,
    /// `schema.progress_table`.
    pub progress: String,
    /// `schema.change_log_table`.
    pub change_log: Option<String>,
    /// `schema.<table>_dead_letters`.
    pub dead_letters: String,
    /// `schema.<table>_too_late`.
    pub too_late: String,
    aggregate: Aggregate,
    measures: Vec<String>,
}

impl Layout {
    /// The layout for `config` and the rows of `aggregate`.
    pub fn new(config: &PostgresConfig, aggregate: &Aggregate) -> Layout {
        let qualified = |table: &str| format!("{}.{}", config.schema, table);
        Layout {
            schema: config.schema.clone(),
            aggregates: qualified(&config.table),
            progress: qualified(&config.progress_table),
            change_log: config.change_log_table.as_deref().map(qualified),
            dead_letters: qualified(&format!("{}{DEAD_LETTERS_SUFFIX}", config.table)),
            too_late: qualified(&format!("{}{TOO_LATE_SUFFIX}", config.table)),
            measures: aggregate
                .measure_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            aggregate: aggregate.clone(),
        }
    }

    fn dim_names(&self) -> Vec<&str> {
        self.aggregate.dims.names()
    }

    fn measure_names(&self) -> Vec<&str> {
        self.measures.iter().map(String::as_str).collect()
    }

    /// The aggregates table's columns and their types (as `information_schema` names
    /// them), in order.
    pub fn aggregate_columns(&self) -> Vec<(String, &'static str)> {
        let mut columns = vec![
            ("window_start".to_owned(), "timestamp with time zone"),
            ("window_end".to_owned(), "timestamp with time zone"),
        ];
        columns.extend(self.dim_names().into_iter().map(|d| (d.to_owned(), "text")));
        columns.extend(self.measures.iter().map(|m| (m.clone(), "bigint")));
        columns.push(("status".to_owned(), "text"));
        columns.push(("last_frontier".to_owned(), "timestamp with time zone"));
        columns
    }

    /// The progress table's columns and their types.
    pub fn progress_columns() -> Vec<(String, &'static str)> {
        [
            ("sink", "text"),
            ("frontier_ms", "bigint"),
            ("batch_seq", "bigint"),
            ("complete", "boolean"),
            ("updated_at", "timestamp with time zone"),
        ]
        .map(|(c, t)| (c.to_owned(), t))
        .to_vec()
    }

    /// The change-log table's columns and their types.
    pub fn change_log_columns(&self) -> Vec<(String, &'static str)> {
        let mut columns = vec![
            ("batch_seq".to_owned(), "bigint"),
            ("frontier".to_owned(), "timestamp with time zone"),
        ];
        columns.extend(
            self.aggregate_columns()
                .into_iter()
                .take(2 + self.dim_names().len() + self.measures.len() + 1),
        );
        columns
    }

    /// The dead-letter table's columns and their types.
    pub fn dead_letter_columns() -> Vec<(String, &'static str)> {
        [
            ("batch_seq", "bigint"),
            ("frontier", "timestamp with time zone"),
            ("stream", "text"),
            ("source", "text"),
            ("position", "bigint"),
            ("reason", "text"),
            ("raw", "text"),
        ]
        .map(|(c, t)| (c.to_owned(), t))
        .to_vec()
    }

    /// The too-late table's columns and their types.
    pub fn too_late_columns() -> Vec<(String, &'static str)> {
        [
            ("batch_seq", "bigint"),
            ("frontier", "timestamp with time zone"),
            ("stream", "text"),
            ("source", "text"),
            ("position", "bigint"),
            ("id", "numeric"),
            ("ts", "timestamp with time zone"),
            ("watermark", "timestamp with time zone"),
            ("reason", "text"),
        ]
        .map(|(c, t)| (c.to_owned(), t))
        .to_vec()
    }

    /// Statements creating the schema and the tables if missing.
    pub fn create(&self) -> String {
        let key: Vec<&str> = std::iter::once("window_start")
            .chain(self.dim_names())
            .collect();
        let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {};\n", self.schema);
        let _ = write!(
            sql,
            "CREATE TABLE IF NOT EXISTS {} (\n  window_start timestamptz NOT NULL,\n  \
             window_end timestamptz NOT NULL,\n",
            self.aggregates
        );
        for dim in self.dim_names() {
            let _ = writeln!(sql, "  {dim} text NOT NULL,");
        }
        for measure in &self.measures {
            let _ = writeln!(sql, "  {measure} bigint NOT NULL,");
        }
        let _ = write!(
            sql,
            "  status text NOT NULL,\n  last_frontier timestamptz,\n  PRIMARY KEY ({})\n);\n",
            key.join(", ")
        );
        let _ = write!(
            sql,
            "CREATE TABLE IF NOT EXISTS {} (\n  sink text PRIMARY KEY,\n  \
             frontier_ms bigint NOT NULL,\n  batch_seq bigint NOT NULL,\n  \
             complete boolean NOT NULL,\n  updated_at timestamptz NOT NULL\n);\n",
            self.progress
        );
        if let Some(change_log) = &self.change_log {
            let _ = write!(
                sql,
                "CREATE TABLE IF NOT EXISTS {change_log} (\n  batch_seq bigint NOT NULL,\n  \
                 frontier timestamptz,\n  window_start timestamptz NOT NULL,\n  \
                 window_end timestamptz NOT NULL,\n"
            );
            for dim in self.dim_names() {
                let _ = writeln!(sql, "  {dim} text NOT NULL,");
            }
            for measure in &self.measures {
                let _ = writeln!(sql, "  {measure} bigint NOT NULL,");
            }
            sql.push_str("  status text NOT NULL\n);\n");
        }
        let _ = write!(
            sql,
            "CREATE TABLE IF NOT EXISTS {} (\n  batch_seq bigint NOT NULL,\n  \
             frontier timestamptz,\n  stream text NOT NULL,\n  source text NOT NULL,\n  \
             position bigint NOT NULL,\n  reason text NOT NULL,\n  raw text NOT NULL\n);\n",
            self.dead_letters
        );
        let _ = write!(
            sql,
            "CREATE TABLE IF NOT EXISTS {} (\n  batch_seq bigint NOT NULL,\n  \
             frontier timestamptz,\n  stream text NOT NULL,\n  source text NOT NULL,\n  \
             position bigint NOT NULL,\n  id numeric NOT NULL,\n  ts timestamptz NOT NULL,\n  \
             watermark timestamptz NOT NULL,\n  reason text NOT NULL\n);\n",
            self.too_late
        );
        sql
    }

    /// The session-local staging table the batch's rows are copied into; emptied at
    /// each commit.
    pub fn create_staging(&self) -> String {
        let mut sql = String::from(
            "CREATE TEMP TABLE IF NOT EXISTS diffmill_batch (window_start int8 NOT NULL, \
             window_end int8 NOT NULL",
        );
        for dim in self.dim_names() {
            let _ = write!(sql, ", {dim} text NOT NULL");
        }
        for measure in &self.measures {
            let _ = write!(sql, ", {measure} int8 NOT NULL");
        }
        sql.push_str(", status text NOT NULL) ON COMMIT DELETE ROWS;\n");
        sql.push_str(
            "CREATE TEMP TABLE IF NOT EXISTS diffmill_batch_dead_letters (stream text NOT NULL, \
             source text NOT NULL, position int8 NOT NULL, reason text NOT NULL, \
             raw text NOT NULL) ON COMMIT DELETE ROWS;\n\
             CREATE TEMP TABLE IF NOT EXISTS diffmill_batch_too_late (stream text NOT NULL, \
             source text NOT NULL, position int8 NOT NULL, id numeric NOT NULL, \
             ts int8 NOT NULL, watermark int8 NOT NULL, reason text NOT NULL) \
             ON COMMIT DELETE ROWS",
        );
        sql
    }

    /// `COPY` of the staging table from text rows (see [`Layout::copy_row`]).
    pub fn copy(&self) -> String {
        format!("COPY {STAGING} FROM STDIN")
    }

    /// Appends `row` to `out` in `COPY`'s text format.
    pub fn copy_row(&self, out: &mut String, row: &AggregateRow) {
        let _ = write!(out, "{}\t{}", row.window_start, row.window_end);
        for text in self.aggregate.dims.texts(&row.dims) {
            out.push('\t');
            escape(out, &text);
        }
        for value in row.delta.values(self.measures.len()) {
            let _ = write!(out, "\t{value}");
        }
        let _ = writeln!(out, "\t{}", row.status.name());
    }

    /// Adds the staged deltas to the totals; `$1` is the batch's frontier in ms (`NULL`
    /// for a complete input).
    pub fn upsert(&self) -> String {
        let dims = self.dim_names();
        let measures = self.measure_names();
        let mut columns = vec!["window_start", "window_end"];
        columns.extend(&dims);
        columns.extend(&measures);
        columns.extend(["status", "last_frontier"]);
        let mut values = vec![at("b.window_start"), at("b.window_end")];
        values.extend(dims.iter().map(|d| format!("b.{d}")));
        values.extend(measures.iter().map(|m| format!("b.{m}")));
        values.extend(["b.status".to_owned(), at("$1")]);
        let key: Vec<&str> = std::iter::once("window_start").chain(dims).collect();
        let mut sets: Vec<String> = measures
            .iter()
            .map(|m| format!("{m} = a.{m} + excluded.{m}"))
            .collect();
        sets.push("status = excluded.status".to_owned());
        sets.push("last_frontier = excluded.last_frontier".to_owned());
        format!(
            "INSERT INTO {} AS a ({}) SELECT {} FROM {STAGING} b ON CONFLICT ({}) DO UPDATE SET {}",
            self.aggregates,
            columns.join(", "),
            values.join(", "),
            key.join(", "),
            sets.join(", ")
        )
    }

    /// Deletes the rows the batch touched whose totals are all zero.
    pub fn delete_zeros(&self) -> String {
        let mut conditions = vec![format!("a.window_start = {}", at("b.window_start"))];
        conditions.extend(self.dim_names().iter().map(|d| format!("a.{d} = b.{d}")));
        conditions.extend(self.measures.iter().map(|m| format!("a.{m} = 0")));
        format!(
            "DELETE FROM {} a USING {STAGING} b WHERE {}",
            self.aggregates,
            conditions.join(" AND ")
        )
    }

    /// Marks windows final: `$1` their starts (ms), `$2` the batch's frontier (ms).
    pub fn finalize(&self) -> String {
        format!(
            "UPDATE {} SET status = 'final', last_frontier = {} WHERE window_start IN \
             (SELECT {} FROM unnest($1::int8[]) AS w)",
            self.aggregates,
            at("$2"),
            at("w")
        )
    }

    /// Appends the staged rows to the change log: `$1` the batch sequence, `$2` its
    /// frontier (ms).
    pub fn append_change_log(&self) -> Option<String> {
        let change_log = self.change_log.as_ref()?;
        let dims = self.dim_names();
        let measures = self.measure_names();
        let mut columns = vec!["batch_seq", "frontier", "window_start", "window_end"];
        columns.extend(&dims);
        columns.extend(&measures);
        columns.push("status");
        let mut values = vec![
            "$1::int8".to_owned(),
            at("$2"),
            at("b.window_start"),
            at("b.window_end"),
        ];
        values.extend(dims.iter().map(|d| format!("b.{d}")));
        values.extend(measures.iter().map(|m| format!("b.{m}")));
        values.push("b.status".to_owned());
        Some(format!(
            "INSERT INTO {change_log} ({}) SELECT {} FROM {STAGING} b",
            columns.join(", "),
            values.join(", ")
        ))
    }

    /// `COPY` of the dead-letter staging table (see [`dead_letters_text`]).
    pub fn copy_dead_letters(&self) -> String {
        format!("COPY {STAGING_DEAD} FROM STDIN")
    }

    /// `COPY` of the too-late staging table (see [`too_late_text`]).
    pub fn copy_too_late(&self) -> String {
        format!("COPY {STAGING_LATE} FROM STDIN")
    }

    /// Appends the staged dead letters to their table: `$1` the batch number, `$2` its
    /// frontier (ms).
    pub fn append_dead_letters(&self) -> String {
        format!(
            "INSERT INTO {} (batch_seq, frontier, stream, source, position, reason, raw) \
             SELECT $1::int8, {}, stream, source, position, reason, raw FROM {STAGING_DEAD}",
            self.dead_letters,
            at("$2")
        )
    }

    /// Appends the staged too-late records to their table: `$1` the batch number, `$2`
    /// its frontier (ms).
    pub fn append_too_late(&self) -> String {
        format!(
            "INSERT INTO {} (batch_seq, frontier, stream, source, position, id, ts, watermark, \
             reason) SELECT $1::int8, {}, stream, source, position, id, {}, {}, reason \
             FROM {STAGING_LATE}",
            self.too_late,
            at("$2"),
            at("ts"),
            at("watermark")
        )
    }

    /// Adds the sink's progress row if missing: `$1` the sink's name.
    pub fn init_progress(&self) -> String {
        format!(
            "INSERT INTO {} (sink, frontier_ms, batch_seq, complete, updated_at) \
             VALUES ($1, 0, 0, false, now()) ON CONFLICT (sink) DO NOTHING",
            self.progress
        )
    }

    /// Reads (and, in a transaction, locks) the sink's progress row: `$1` its name.
    pub fn lock_progress(&self) -> String {
        format!(
            "SELECT frontier_ms, batch_seq, complete FROM {} WHERE sink = $1 FOR UPDATE",
            self.progress
        )
    }

    /// Records a batch: `$1` name, `$2` frontier (ms), `$3` batches applied, `$4`
    /// complete.
    pub fn record_progress(&self) -> String {
        format!(
            "UPDATE {} SET frontier_ms = $2, batch_seq = $3, complete = $4, updated_at = now() \
             WHERE sink = $1",
            self.progress
        )
    }
}

/// The rows of `batch` in `COPY`'s text format.
pub fn copy_text(layout: &Layout, batch: &Batch) -> String {
    let mut out = String::with_capacity(batch.rows.len() * 96);
    for row in &batch.rows {
        layout.copy_row(&mut out, row);
    }
    out
}

/// The dead letters of `batch` in `COPY`'s text format.
pub fn dead_letters_text(batch: &Batch) -> String {
    let mut out = String::new();
    for letter in &batch.dead_letters {
        let _ = write!(out, "{}\t", letter.stream.name());
        escape(&mut out, &letter.origin.source);
        let _ = write!(out, "\t{}\t", letter.origin.position);
        escape(&mut out, &letter.reason);
        out.push('\t');
        escape(&mut out, &letter.raw);
        out.push('\n');
    }
    out
}

/// The too-late records of `batch` in `COPY`'s text format.
pub fn too_late_text(batch: &Batch) -> String {
    let mut out = String::new();
    for record in &batch.too_late {
        let _ = write!(out, "{}\t", record.stream.name());
        escape(&mut out, &record.origin.source);
        let _ = write!(
            out,
            "\t{}\t{}\t{}\t{}\t",
            record.origin.position, record.id, record.ts, record.watermark
        );
        escape(&mut out, &record.reason);
        out.push('\n');
    }
    out
}

/// Appends `value` escaped for `COPY`'s text format. A NUL character, which PostgreSQL
/// text cannot hold, becomes U+FFFD.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declare::{Attribution, Declaration, FunnelSpec, Measures, Value, WindowStatus};
    use crate::event::Label;

    fn funnel(group_by: &[&str]) -> Aggregate {
        let funnel = FunnelSpec {
            group_by: Some(group_by.iter().map(|d| d.to_string()).collect()),
            ..FunnelSpec::default()
        };
        let settings = Declaration::default().funnel(funnel).resolve().unwrap();
        settings.aggregates[0].clone()
    }

    #[test]
    fn copy_rows_are_tab_separated_and_escaped() {
        let aggregate = funnel(&["campaign_id", "region"]);
        let layout = Layout::new(
            &PostgresConfig::with_url("postgresql://localhost/db"),
            &aggregate,
        );
        let key = aggregate.dims.key(&[
            Some(Value::Id(7)),
            Some(Value::String(Label::new("a\tb").unwrap())),
        ]);
        let row = AggregateRow {
            window_start: 0,
            window_end: 900_000,
            dims: Attribution::Dims(key),
            delta: Measures::from_values(&[1, 0, 0, 0, -5]),
            status: WindowStatus::Open,
        };
        let mut out = String::new();
        layout.copy_row(&mut out, &row);
        assert_eq!(out, "0\t900000\t7\ta\\tb\t1\t0\t0\t0\t-5\t0\topen\n");
        let unattributed = AggregateRow {
            dims: Attribution::Unattributed,
            ..row
        };
        out.clear();
        layout.copy_row(&mut out, &unattributed);
        assert!(out.starts_with("0\t900000\tunattributed\tunattributed\t"));
    }

    #[test]
    fn rejected_records_are_copied_escaped() {
        use crate::event::{DeadLetter, Origin, StreamKind, TooLate};
        let origin = Origin {
            source: "in/bids.csv".into(),
            position: 3,
        };
        let batch = Batch {
            dead_letters: vec![DeadLetter {
                stream: StreamKind::Bid,
                origin: origin.clone(),
                raw: "1,\\x\t\0\n".into(),
                reason: "bad".into(),
            }],
            too_late: vec![TooLate {
                stream: StreamKind::Click,
                origin,
                id: u64::MAX,
                ts: 5,
                watermark: 900_000,
                reason: "too late".into(),
            }],
            ..Batch::default()
        };
        assert_eq!(
            dead_letters_text(&batch),
            "bid\tin/bids.csv\t3\tbad\t1,\\\\x\\t\u{FFFD}\\n\n"
        );
        assert_eq!(
            too_late_text(&batch),
            format!("click\tin/bids.csv\t3\t{}\t5\t900000\ttoo late\n", u64::MAX)
        );
        let layout = Layout::new(
            &PostgresConfig::with_url("postgresql://localhost/db"),
            &funnel(&["campaign_id"]),
        );
        assert_eq!(
            layout.dead_letters,
            "public.diffmill_aggregates_dead_letters"
        );
        assert_eq!(layout.too_late, "public.diffmill_aggregates_too_late");
    }

    #[test]
    fn the_key_is_the_window_and_the_dims() {
        let layout = Layout::new(
            &PostgresConfig::with_url("postgresql://localhost/db"),
            &funnel(&["campaign_id", "region"]),
        );
        assert!(layout
            .create()
            .contains("PRIMARY KEY (window_start, campaign_id, region)"));
        assert!(layout
            .upsert()
            .contains("ON CONFLICT (window_start, campaign_id, region) DO UPDATE"));
        assert_eq!(layout.aggregate_columns().len(), 2 + 2 + 6 + 2);
    }
}
