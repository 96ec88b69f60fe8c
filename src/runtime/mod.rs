//! Running a graph: workers, ingestion with watermarks, emission of batches, accounting.

mod accounting;
pub mod checkpoint;
mod cluster;
mod connect;
mod control;
mod emit;
mod funnel;
mod guard;
mod ingest;
mod progress;
mod stop;
mod tally;
mod watermark;
mod worker;

pub use accounting::{Accounting, StreamCounts};
pub use cluster::{Cluster, ClusterError, DEFAULT_BASE_PORT};
pub use control::{control, CheckpointClock, Control};
pub use emit::{emit, Emission, EmitCheckpoints, EmitContext, EmitInputs, EmitStart};
pub use funnel::{Funnel, RunError, RunReport, StartFrom};
pub use guard::{GuardState, Guards, OVERFLOW_BUDGET};
pub use ingest::{
    ingest, ingest_checkpointed, IngestCheckpointing, IngestContext, Ingested, MAX_LEAD,
};
pub use progress::{CheckpointNote, IngestCounters, Progress};
pub use stop::{Stop, StopNotice, StopReason};
pub use watermark::{Admission, PartitionClock};
