//! Sources and sinks: the contracts, and the connectors that implement them.
//!
//! Sources turn partitions (files, generator shards) into [`Arrival`]s: events or dead
//! letters, never panics. Sinks receive [`Batch`]es: consistent sets of aggregate diffs
//! with the frontier, made visible as a unit.

mod csv_sink;
mod file;
pub mod generator;
pub mod kafka;
mod memory;
pub mod parquet;
pub mod postgres;
mod sink;
mod source;
mod stdout;

pub use csv_sink::{
    sum_change_log, ChangeLogTotals, CsvSink, AGGREGATES_FILE, DEAD_LETTERS_FILE, LATE_FILE,
};
pub use file::{reader_partition, FileFormat, FileSource, NoFiles};
pub use memory::{MemorySink, MemorySource};
pub use parquet::{ParquetMode, ParquetSink, ParquetSinkSpec};
pub use postgres::{PostgresConfig, PostgresSink};
pub use sink::{AggregateRow, Batch, Resume, Sink, SinkError, SinkHealth};
pub use source::{owner, positioned, Arrival, Partition, PartitionPosition, Poll, Source};
pub use stdout::{OnClosed, StdoutSink};
