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
        field: &'static str,
    },
    /// A field does not hold a number of the right kind.
    #[error("field `{field}`: expected {expected}, got `{}`", printable(value))]
    BadNumber {
        /// The field's name.
        field: &'static str,
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
        field: &'static str,
    },
    /// Event time outside `[0, MAX_TS]`.
    #[error("field `ts`: {ts} is outside the accepted range 0..={MAX_TS}")]
    TsOutOfRange {
        /// The offending value as written.
        ts: String,
    },
    /// A negative amount of money.
    #[error("field `{field}`: money must not be negative, got {value}")]
    NegativeMoney {
        /// The field's name.
        field: &'static str,
        /// The offending amount.
        value: i64,
    },
    /// A string dimension longer than the limit.
    #[error("field `{field}`: {len} bytes is longer than the {max}-byte limit")]
    StringTooLong {
        /// The field's name.
        field: &'static str,
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
        column: &'static str,
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
        "field `ts`: {} is {ahead_ms} ms ahead of the watermark, more than max_future_skew",
        time_text(*ts)
    )]
    TooFarInFuture {
        /// The event time.
        ts: u64,
        /// How far ahead of the watermark it is.
        ahead_ms: u64,
    },
}
