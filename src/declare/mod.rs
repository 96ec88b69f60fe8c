//! The declared vocabulary: streams and their fields, dimensions, measures, aggregates,
//! windows, durations and settings.
//!
//! It sits below both the connectors (which decode records and write rows by it) and the
//! dataflow (which computes what it declares), so every arrow in the crate points down.
//! A graph file's `[funnel]`, `[stream.*]`, `[dimensions]` and `[[aggregate]]` tables are a
//! [`Declaration`]; the Rust builder takes the same value. [`Declaration::resolve`] checks
//! it and gives the [`FunnelSettings`] the runtime runs.

mod aggregate;
mod duration;
mod error;
mod field;
mod filter;
mod key;
mod measures;
mod schema;
mod settings;
mod tick;
mod window;

pub use aggregate::{is_identifier, Aggregate, AggregateSpec, Measure, MeasureKind, MeasureSpec};
pub use duration::DurationText;
pub use error::{DeclError, Segment};
pub(crate) use field::{parse_id, parse_ts};
pub use field::{shorten, Field, FieldType, Value};
pub use filter::Filter;
pub use key::{
    Attribution, DimSlot, Key, KeyLayout, Projection, COMPACT_KEY_BYTES, KEY_BYTES, OTHER,
    UNATTRIBUTED,
};
pub use measures::{Measures, MAX_MEASURES};
pub use schema::{Fields, Schema, StreamSchema, StreamSpec, UnknownFields, MAX_FIELDS};
pub use settings::{
    Beyond, Declaration, DimensionBound, DimensionSpec, FunnelSettings, FunnelSpec, SettingsError,
    MAX_BOUNDED_DIMS, MAX_FILTERS, MAX_SUMMED_FIELDS,
};
pub use tick::Tick;
pub use window::{Lateness, Window, WindowStatus, MAX_AGGREGATES};
