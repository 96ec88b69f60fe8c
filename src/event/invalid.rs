//! Why a record could not become an event: the reason carried by a dead-letter record.

use thiserror::Error;

use super::{printable, time_text, StreamKind};

/// Latest accepted event time: 9999-12-31T23:59:59.999Z in ms.
pub const MAX_TS: u64 = 253_402_300_799_999;

/// The reason a raw record was rejected by parsing or validation.
///
/// Every variant names the field and the problem, so that the dead-letter output says
/// exactly what to fix upstream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Invalid {
    /// A required field is absent (missing column, missing JSON key or empty value).
    #[error("missing field `{field}`")]
    MissingField {
        /// The field's name.
        field: String,
    },
    /// A field does not hold a value of its type.
    #[error("field `{field}`: expected {expected}, got `{}`", printable(value))]
    BadNumber {
        /// The field's name.
        field: String,
        /// The offending text (shortened when long; printed with control characters
        /// escaped).
        value: String,
        /// What was expected, e.g. "positive integer id".
        expected: &'static str,
    },
    /// An id of zero; ids are positive.
    #[error("field `{field}`: id 0 is not a valid id")]
    ZeroId {
        /// The field's name.
        field: String,
    },
    /// A timestamp outside `[0, MAX_TS]`.
    #[error("field `{field}`: {ts} is outside the accepted range 0..={MAX_TS}")]
    TsOutOfRange {
        /// The field's name.
        field: String,
        /// The offending value as written.
        ts: String,
    },
    /// A negative amount of money.
    #[error("field `{field}`: money must not be negative, got {value}")]
    NegativeMoney {
        /// The field's name.
        field: String,
        /// The offending amount.
        value: i64,
    },
    /// A string dimension longer than the limit.
    #[error("field `{field}`: {len} bytes is longer than the {max}-byte limit")]
    StringTooLong {
        /// The field's name.
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The record is not valid JSON, or not a JSON object of the stream's shape.
    #[error("bad JSON: {0}")]
    Json(String),
    /// The record is not valid CSV (e.g. wrong number of columns).
    #[error("bad CSV: {0}")]
    Csv(String),
    /// A CSV record with more fields than its header has columns (for headerless
    /// records: than the stream has fields). Which value belongs to which column is
    /// unknown, so none is used.
    #[error("bad CSV: {found} fields, but the header has {columns} columns")]
    ExtraFields {
        /// Fields in the record.
        found: usize,
        /// Columns of the header.
        columns: usize,
    },
    /// The CSV header lacks a column that the stream requires.
    #[error("CSV header of a {stream} file has no `{column}` column")]
    HeaderMissingColumn {
        /// The stream the file was read as.
        stream: StreamKind,
        /// The missing column.
        column: String,
    },
    /// The CSV header has a column the stream does not declare, and the declaration
    /// rejects unknown fields.
    #[error("CSV header of a {stream} file has the column `{column}`, which the stream does not declare (its unknown fields are rejected)")]
    HeaderUnknownColumn {
        /// The stream the file was read as.
        stream: StreamKind,
        /// The undeclared column.
        column: String,
    },
    /// A JSON record has a key the stream does not declare, and the declaration rejects
    /// unknown fields.
    #[error("field `{field}` is not declared (the stream's unknown fields are rejected)")]
    UnknownField {
        /// The undeclared key.
        field: String,
    },
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8: {0}")]
    NotUtf8(String),
    /// The record is longer than the per-record limit.
    #[error("record of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The event time is too far ahead of the partition's watermark.
    #[error(
        "field `{field}`: {} is {ahead_ms} ms ahead of the watermark, more than max_future_skew",
        time_text(*ts)
    )]
    TooFarInFuture {
        /// The event time field's name.
        field: String,
        /// The event time.
        ts: u64,
        /// How far ahead of the watermark it is.
        ahead_ms: u64,
    },
    /// Summing the record could take a sum beyond the range where every aggregate stays
    /// exact (docs/semantics.md §1, the overflow budget).
    #[error(
        "field `{field}`: adding {value} would take the partition's sum of |{field}| in the \
         window from {} past the overflow budget of {budget}",
        time_text(*window_start)
    )]
    SumOverflow {
        /// The summed field.
        field: String,
        /// The record's value.
        value: i64,
        /// Start of the window whose budget it would exceed.
        window_start: u64,
        /// The budget.
        budget: u64,
    },
    /// A dimension value beyond the dimension's bound on distinct values.
    #[error(
        "field `{field}`: `{}` would be distinct value number {} of the partition, more than \
         the {max} the dimension allows",
        printable(value),
        max + 1
    )]
    TooManyValues {
        /// The dimension.
        field: String,
        /// The value.
        value: String,
        /// The bound.
        max: usize,
    },
}
