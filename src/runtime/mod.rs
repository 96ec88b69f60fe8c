//! Running a graph: workers, ingestion with watermarks, emission of batches, accounting.

mod accounting;
mod emit;
mod funnel;
mod ingest;
mod progress;
mod watermark;

pub use accounting::{Accounting, StreamCounts};
pub use emit::{emit, EmitContext};
pub use funnel::{Funnel, RunError, RunReport};
pub use ingest::{ingest, IngestContext};
pub use progress::{IngestCounters, Progress};
pub use watermark::{Admission, PartitionClock};
