//! The four streams, the records read from them, and the records that are rejected.
//!
//! Each record has a unique id and an event time `ts` in milliseconds since the Unix epoch
//! (docs/design.md §2); its other fields are declared per stream (`crate::declare`). A record
//! that cannot be parsed or validated becomes a [`DeadLetter`] with its origin, raw text
//! and reason; it is never a panic and never silently dropped.

mod dead_letter;
mod invalid;
mod label;
mod payload;
mod record;
mod time;

pub use dead_letter::{printable, raw_text, DeadLetter, Origin, Rejected, TooLate, MAX_RAW_KEPT};
pub use invalid::{Invalid, MAX_TS};
pub use label::{Label, LABEL_MAX_BYTES};
pub use payload::{Record, PAYLOAD_BYTES};
pub use record::{
    Bid, Click, Conversion, Event, EventId, Impression, Keyed, Micros, Millis, StreamKind,
};
pub use time::{span_text, time_text, utc};
