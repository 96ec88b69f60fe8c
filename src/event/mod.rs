//! The four event types, their parsing and validation, and the records that are rejected.
//!
//! Each event has a unique id and an event time `ts` in milliseconds since the Unix epoch
//! (docs/design.md §2). A record that cannot be parsed or validated becomes a [`DeadLetter`]
//! with its origin, raw text and reason; it is never a panic and never silently dropped.

mod dead_letter;
mod invalid;
mod label;
mod parse;
mod record;
mod time;

pub use dead_letter::{printable, raw_text, DeadLetter, Origin, Rejected, TooLate, MAX_RAW_KEPT};
pub use invalid::{Invalid, MAX_TS};
pub use label::{Label, LABEL_MAX_BYTES};
pub use parse::{
    fields, parse_csv_line, parse_json, to_csv_fields, to_json, validate, CsvDecoder, Format,
    MAX_RECORD_BYTES,
};
pub use record::{
    Bid, Click, Conversion, Event, EventId, Impression, Micros, Millis, Record, StreamKind,
};
pub use time::{span_text, time_text, utc};
