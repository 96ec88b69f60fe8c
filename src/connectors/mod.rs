//! Sources and sinks: the contracts, and the connectors that implement them.

pub mod generator;
mod memory;
mod sink;
mod source;

pub use memory::{MemorySink, MemorySource};
pub use sink::{AggregateRow, Batch, Sink, SinkError};
pub use source::{Arrival, Partition, Poll, Source};
