//! The tables' columns: Arrow schemas, and rows turned into record batches.
//!
//! The aggregates table follows the aggregate's declaration: a column per declared dim,
//! a column per declared measure, in declaration order. Times are
//! `TIMESTAMP(MILLIS, UTC)`; dims are strings holding the text the CSV sink writes
//! (`other` and `unattributed` included); measures are `INT64` (counts, sums of ints, and
//! sums of money as integer micros, exact); positions are `INT64`.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::declare::{Aggregate, Attribution, KeyLayout, Measures};
use crate::event::{DeadLetter, Millis, TooLate};

/// The Arrow type of every time column: milliseconds since the epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A time in ms as a timestamp value (times past `i64::MAX` ms do not occur: event
/// times end at year 9999).
fn ms(time: Millis) -> i64 {
    i64::try_from(time).unwrap_or(i64::MAX)
}

fn timestamps() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone("UTC")
}

/// One row of the aggregates table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregateLine {
    /// Window start (inclusive).
    pub window_start: Millis,
    /// Window end (exclusive).
    pub window_end: Millis,
    /// The dims; `None` on the row that announces a window final in `changes` mode.
    pub dims: Option<Attribution>,
    /// A diff (`changes`) or a total (`final`).
    pub measures: Measures,
    /// `open`, `closed`, `correction` or `final`.
    pub status: &'static str,
}

/// The columns of the aggregates table for an aggregate's dims and measures:
/// `window_start, window_end, <dims…>, <measures…>, status, frontier, batch_seq`.
#[derive(Clone, Debug)]
pub struct AggregateColumns {
    dims: KeyLayout,
    measures: usize,
    schema: SchemaRef,
}

impl AggregateColumns {
    /// The columns for the dims and measures `aggregate` declares.
    pub fn new(aggregate: &Aggregate) -> AggregateColumns {
        let mut fields = vec![
            Field::new("window_start", timestamp_type(), false),
            Field::new("window_end", timestamp_type(), false),
        ];
        fields.extend(
            aggregate
                .dims
                .names()
                .into_iter()
                .map(|name| Field::new(name, DataType::Utf8, true)),
        );
        fields.extend(
            aggregate
                .measures
                .iter()
                .map(|m| Field::new(m.name.as_str(), DataType::Int64, false)),
        );
        fields.extend([
            Field::new("status", DataType::Utf8, false),
            Field::new("frontier", timestamp_type(), true),
            Field::new("batch_seq", DataType::Int64, false),
        ]);
        AggregateColumns {
            dims: aggregate.dims.clone(),
            measures: aggregate.measures.len(),
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The column names, in order.
    pub fn names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// `lines` of the batch `seq` with frontier `frontier` (`None`: input complete).
    ///
    /// # Errors
    /// An [`ArrowError`] if the columns do not fit the schema (a bug).
    pub fn batch(
        &self,
        lines: &[&AggregateLine],
        frontier: Option<Millis>,
        seq: u64,
    ) -> Result<RecordBatch, ArrowError> {
        let mut starts = timestamps();
        let mut ends = timestamps();
        let mut dims: Vec<StringBuilder> = self
            .dims
            .names()
            .iter()
            .map(|_| StringBuilder::new())
            .collect();
        let mut measures: Vec<Int64Builder> =
            (0..self.measures).map(|_| Int64Builder::new()).collect();
        let mut status = StringBuilder::new();
        for line in lines {
            starts.append_value(ms(line.window_start));
            ends.append_value(ms(line.window_end));
            match &line.dims {
                Some(attribution) => {
                    for (text, column) in self.dims.texts(attribution).iter().zip(&mut dims) {
                        column.append_value(text);
                    }
                }
                None => dims.iter_mut().for_each(StringBuilder::append_null),
            }
            for (value, column) in line
                .measures
                .values(self.measures)
                .iter()
                .zip(&mut measures)
            {
                column.append_value(*value);
            }
            status.append_value(line.status);
        }
        let rows = lines.len();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(starts.finish()), Arc::new(ends.finish())];
        columns.extend(dims.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef));
        columns.extend(
            measures
                .iter_mut()
                .map(|c| Arc::new(c.finish()) as ArrayRef),
        );
        columns.push(Arc::new(status.finish()));
        columns.push(batch_frontier(frontier, rows));
        columns.push(batch_seq(seq, rows));
        RecordBatch::try_new(self.schema(), columns)
    }
}

fn batch_frontier(frontier: Option<Millis>, rows: usize) -> ArrayRef {
    let mut column = timestamps();
    for _ in 0..rows {
        column.append_option(frontier.map(ms));
    }
    Arc::new(column.finish())
}

fn batch_seq(seq: u64, rows: usize) -> ArrayRef {
    let mut column = Int64Builder::with_capacity(rows);
    column.append_value_n(i64::try_from(seq).unwrap_or(i64::MAX), rows);
    Arc::new(column.finish())
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut column = StringBuilder::new();
    for value in values {
        column.append_value(value);
    }
    Arc::new(column.finish())
}

fn integers(values: impl Iterator<Item = u64>) -> ArrayRef {
    let mut column = Int64Builder::new();
    for value in values {
        column.append_value(i64::try_from(value).unwrap_or(i64::MAX));
    }
    Arc::new(column.finish())
}

fn times(values: impl Iterator<Item = Millis>) -> ArrayRef {
    let mut column = timestamps();
    for value in values {
        column.append_value(ms(value));
    }
    Arc::new(column.finish())
}

/// The dead-letter table's schema:
/// `batch_seq, frontier, stream, source, position, reason, raw`.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("batch_seq", DataType::Int64, false),
        Field::new("frontier", timestamp_type(), true),
        Field::new("stream", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("position", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

/// The dead letters of batch `seq` as a record batch of [`dead_letter_schema`].
///
/// # Errors
/// An [`ArrowError`] if the columns do not fit the schema (a bug).
pub fn dead_letters(
    letters: &[&DeadLetter],
    frontier: Option<Millis>,
    seq: u64,
) -> Result<RecordBatch, ArrowError> {
    let rows = letters.len();
    RecordBatch::try_new(
        dead_letter_schema(),
        vec![
            batch_seq(seq, rows),
            batch_frontier(frontier, rows),
            strings(letters.iter().map(|d| d.stream.name())),
            strings(letters.iter().map(|d| d.origin.source.as_str())),
            integers(letters.iter().map(|d| d.origin.position)),
            strings(letters.iter().map(|d| d.reason.as_str())),
            strings(letters.iter().map(|d| d.raw.as_str())),
        ],
    )
}

/// The too-late table's schema:
/// `batch_seq, frontier, stream, source, position, id, ts, watermark, reason`.
pub fn too_late_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("batch_seq", DataType::Int64, false),
        Field::new("frontier", timestamp_type(), true),
        Field::new("stream", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("position", DataType::Int64, false),
        Field::new("id", DataType::UInt64, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("watermark", timestamp_type(), false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// The too-late records of batch `seq` as a record batch of [`too_late_schema`].
///
/// # Errors
/// An [`ArrowError`] if the columns do not fit the schema (a bug).
pub fn too_late(
    records: &[&TooLate],
    frontier: Option<Millis>,
    seq: u64,
) -> Result<RecordBatch, ArrowError> {
    let rows = records.len();
    let ids: arrow_array::UInt64Array = records.iter().map(|r| Some(r.id)).collect();
    RecordBatch::try_new(
        too_late_schema(),
        vec![
            batch_seq(seq, rows),
            batch_frontier(frontier, rows),
            strings(records.iter().map(|r| r.stream.name())),
            strings(records.iter().map(|r| r.origin.source.as_str())),
            integers(records.iter().map(|r| r.origin.position)),
            Arc::new(ids),
            times(records.iter().map(|r| r.ts)),
            times(records.iter().map(|r| r.watermark)),
            strings(records.iter().map(|r| r.reason.as_str())),
        ],
    )
}
