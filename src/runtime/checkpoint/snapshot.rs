//! What a checkpoint holds, and the parts the operators send to make one.

use serde::{Deserialize, Serialize};

use super::Identity;
use crate::codec::SharedBytes;
use crate::connectors::PartitionPosition;
use crate::dataflow::DedupSnapshot;
use crate::event::{Millis, Record, Rejected, StreamKind};
use crate::runtime::{Accounting, GuardState};

/// A partition as a checkpoint keeps it: where it stands, its watermark and its guards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The partition's name (a file path, `topic/partition`, `generator/3`): how a
    /// restarted run, whatever its number of workers, finds it again.
    pub name: String,
    /// Where it stands after the last record read.
    pub position: PartitionPosition,
    /// The greatest event time it admitted (its watermark is this minus max disorder),
    /// or where an idle partition was caught up to.
    pub max_seen: Option<Millis>,
    /// The values it kept of each bounded dimension and the overflow budgets it spent.
    pub guards: GuardState,
    /// True when the partition was read to its end.
    pub done: bool,
}

/// What one worker's ingestion contributes to a checkpoint at `frontier`.
///
/// Every record the worker read went either into the dataflow at a time before
/// `frontier` (then the dedup snapshots hold its effect) or at `frontier` or later: then
/// it is in `events` or `rejects` with its time, and a restart sends it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestPart {
    /// The worker (cluster-wide index).
    pub worker: usize,
    /// The checkpoint frontier it answers. For a `last` part, the least frontier it can
    /// serve: its records at times from there on are in it.
    pub frontier: Millis,
    /// The worker has read all its partitions to their end (or has none): this part
    /// serves every later checkpoint, whose records are filtered from it by time.
    pub last: bool,
    /// The worker's partitions.
    pub partitions: Vec<PartitionState>,
    /// Ingestion counts of everything the worker read (dedup counts are not in it).
    pub accounting: Accounting,
    /// Admitted records at their entry times, at or after `frontier`.
    pub events: Vec<(Record, Millis)>,
    /// Rejected records at their times, at or after `frontier`.
    pub rejects: Vec<(Millis, Rejected)>,
}

/// A part of a checkpoint, as it travels to the emitter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    /// One worker's ingestion.
    Ingest(Box<IngestPart>),
    /// One dedup operator's groups, with the stream it deduplicates.
    Dedup(StreamKind, DedupSnapshot),
}

/// A consistent state of the run at `frontier` (docs/design.md §11).
///
/// Restoring it and running on produces, for every frontier after it, exactly what an
/// uninterrupted run produces: the partitions are reopened at their positions with their
/// watermarks, the dedup groups (and through them every join and aggregate) are taken
/// back, the records read but not yet applied at `frontier` are sent again at their
/// times, and the emitter continues its batch sequence and its open windows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The graph and settings the state belongs to.
    pub identity: Identity,
    /// The checkpoint's frontier: every sink held every batch up to it when it was
    /// written. `None`: the run completed its input (nothing to restore).
    pub frontier: Option<Millis>,
    /// The sequence number of the next batch.
    pub next_seq: u64,
    /// Per aggregate (in declaration order), the starts of its windows with rows that are
    /// not final yet.
    pub windows: Vec<Vec<Millis>>,
    /// Every partition of the source.
    pub partitions: Vec<PartitionState>,
    /// Counts of every record read up to the partitions' positions, cluster-wide
    /// (dedup counts for the records applied before `frontier`).
    pub accounting: Accounting,
    /// The dedup groups held at `frontier`, per stream and dedup operator.
    pub groups: Vec<Groups>,
    /// Records read, not yet applied at `frontier`: admitted records at their entry times.
    pub events: Vec<(Record, Millis)>,
    /// Records read, rejected at `frontier` or later, at their times.
    pub rejects: Vec<(Millis, Rejected)>,
}

/// The dedup groups of one dedup operator, as they are kept in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// The stream.
    pub stream: StreamKind,
    /// An encoded sequence of [`crate::dataflow::GroupState`]s of the stream's
    /// [`Record`]s (bytes, so that reading a checkpoint copies them rather than decoding
    /// them twice, and a segment unchanged since the last checkpoint is shared with it).
    pub bytes: SharedBytes,
}

impl Checkpoint {
    /// A checkpoint that says the run completed its input: a later run starts over.
    pub fn complete(identity: Identity, next_seq: u64) -> Checkpoint {
        Checkpoint {
            identity,
            frontier: None,
            next_seq,
            windows: Vec::new(),
            partitions: Vec::new(),
            accounting: Accounting::default(),
            groups: Vec::new(),
            events: Vec::new(),
            rejects: Vec::new(),
        }
    }

    /// Records held: dedup groups are not decoded, so this counts the records read but
    /// not applied, for messages.
    pub fn pending_records(&self) -> usize {
        self.events.len() + self.rejects.len()
    }
}
