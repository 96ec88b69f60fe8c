//! Running a graph: workers, ingestion with watermarks, emission of batches, accounting.

mod accounting;
mod cluster;
mod emit;
mod funnel;
mod guard;
mod ingest;
mod progress;
mod stop;
mod tally;
mod watermark;

pub use accounting::{Accounting, StreamCounts};
pub use cluster::{Cluster, ClusterError, DEFAULT_BASE_PORT};
pub use emit::{emit, EmitContext};
pub use funnel::{Funnel, RunError, RunReport};
pub use guard::{Guards, OVERFLOW_BUDGET};
pub use ingest::{ingest, IngestContext, Ingested, MAX_LEAD};
pub use progress::{IngestCounters, Progress};
pub use stop::{hear_stops, Stop, StopNotice, StopReason};
pub use watermark::{Admission, PartitionClock};
