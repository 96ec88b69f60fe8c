//! Parquet, the warehouse side: a sink writing Hive-style partitioned tables, and event
//! files for the files source (replays of an archive) and for `gen`.
//!
//! - [`config`]: the `[[sink]] kind = "parquet"` settings;
//! - [`layout`]: tables, Hive-style partitions, file names by batch sequence;
//! - [`columns`]: the tables' Arrow schemas, rows as record batches;
//! - [`publish`]: a file appears atomically (temporary name, fsync, rename);
//! - [`progress`]: the commit record, written after a batch's files;
//! - [`open_windows`]: `final` mode's totals of the windows not final yet;
//! - [`sink`]: the [`crate::connectors::Sink`]: what is written when, what a restart does;
//! - [`decode`]: event columns by name to events, through the CSV decoder;
//! - [`source`]: one event file as a partition of the files source;
//! - [`events`]: writing event files.

pub mod columns;
pub mod config;
pub mod decode;
pub mod events;
pub mod layout;
pub mod open_windows;
pub mod progress;
pub mod publish;
pub mod sink;
pub mod source;
#[cfg(test)]
mod tests;

pub use config::{ParquetMode, ParquetSinkSpec, DEFAULT_ROW_GROUP_SIZE};
pub use decode::{ColumnError, EventColumns};
pub use events::EventFileWriter;
pub use open_windows::OpenWindows;
pub use sink::ParquetSink;
pub use source::{check_event_file, ParquetPartition};
