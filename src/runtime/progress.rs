//! Live counters shared by the workers of a process: what the status line shows and what
//! the run reports at the end.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Accounting, StreamCounts};
use crate::dataflow::DedupCounters;
use crate::event::StreamKind;

/// Per-stream ingestion counters.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// Records read.
    pub read: AtomicU64,
    /// Dead-lettered records.
    pub dead_lettered: AtomicU64,
    /// Too-late records.
    pub too_late: AtomicU64,
    /// Late but applied records.
    pub late: AtomicU64,
    /// Attribution-only parents.
    pub attribution_only: AtomicU64,
}

/// Counters of a running graph, updated by the operators once per activation.
#[derive(Debug)]
pub struct Progress {
    /// Ingestion counters per stream, indexed by [`StreamKind::index`].
    pub ingest: [IngestCounters; 4],
    /// Dedup counters per stream.
    pub dedup: [Arc<DedupCounters>; 4],
    /// The frontier of the last emitted batch (`u64::MAX` once the input is complete).
    pub frontier: AtomicU64,
    /// Batches emitted.
    pub batches: AtomicU64,
    /// Updates held in the join arrangements, over all workers of the process.
    pub arranged: AtomicI64,
    /// Workers of this process that have started: a cluster has formed once this is
    /// non-zero (timely connects all processes before any worker starts).
    pub workers_started: AtomicUsize,
    /// True while the emitter is writing a batch to the sinks: a process that must exit
    /// abruptly (a lost cluster connection) waits for it, so no batch is cut in half.
    pub writing: AtomicBool,
    /// The last durable checkpoint, when the run writes checkpoints.
    pub checkpoint: Mutex<Option<CheckpointNote>>,
}

/// What the status line and the summary say of the last durable checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointNote {
    /// Its frontier.
    pub frontier: Option<crate::event::Millis>,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long encoding and writing it took.
    pub took: std::time::Duration,
    /// When it became durable.
    pub at: std::time::Instant,
    /// Checkpoints written by this run so far.
    pub count: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            ingest: Default::default(),
            dedup: Default::default(),
            frontier: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            arranged: AtomicI64::new(0),
            workers_started: AtomicUsize::new(0),
            writing: AtomicBool::new(false),
            checkpoint: Mutex::new(None),
        }
    }
}

impl Progress {
    /// Records held in state now: updates in the join arrangements plus ids held by dedup.
    /// Retention keeps this bounded by the event rate times (retention + window +
    /// allowed lateness + disorder), not by the length of the run.
    pub fn held_records(&self) -> i64 {
        self.arranged.load(Ordering::Relaxed) + self.dedup.iter().map(|d| d.held()).sum::<i64>()
    }

    /// A snapshot of the accounting of every record read so far.
    pub fn accounting(&self) -> Accounting {
        let mut accounting = Accounting::default();
        for kind in StreamKind::ALL {
            let ingest = &self.ingest[kind.index()];
            let dedup = self.dedup[kind.index()].snapshot();
            let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            *accounting.stream_mut(kind) = StreamCounts {
                read: get(&ingest.read),
                dead_lettered: get(&ingest.dead_lettered),
                too_late: get(&ingest.too_late),
                applied: dedup.applied,
                duplicate: dedup.duplicate,
                conflicting: dedup.conflicting,
                late: get(&ingest.late),
                attribution_only: get(&ingest.attribution_only),
            };
        }
        accounting
    }

    /// Records a checkpoint of state made durable (the marker of a complete input is
    /// not one).
    pub fn note_checkpoint(&self, written: &crate::runtime::checkpoint::Written) {
        if written.frontier.is_none() {
            return;
        }
        if let Ok(mut slot) = self.checkpoint.lock() {
            let count = slot.as_ref().map_or(0, |note| note.count) + 1;
            *slot = Some(CheckpointNote {
                frontier: written.frontier,
                bytes: written.bytes,
                took: written.took,
                at: std::time::Instant::now(),
                count,
            });
        }
    }

    /// Adds the counts of earlier runs, from the checkpoint a run restored.
    pub fn add_restored(&self, accounting: &Accounting) {
        self.add_ingest(accounting);
        for kind in StreamKind::ALL {
            let counts = accounting.stream(kind);
            self.dedup[kind.index()].add(&crate::dataflow::DedupCounts {
                applied: counts.applied,
                duplicate: counts.duplicate,
                conflicting: counts.conflicting,
            });
        }
    }

    /// Adds a worker's local ingestion counts (kept per activation to avoid contention).
    pub fn add_ingest(&self, local: &Accounting) {
        for kind in StreamKind::ALL {
            let from = local.stream(kind);
            let to = &self.ingest[kind.index()];
            for (counter, value) in [
                (&to.read, from.read),
                (&to.dead_lettered, from.dead_lettered),
                (&to.too_late, from.too_late),
                (&to.late, from.late),
                (&to.attribution_only, from.attribution_only),
            ] {
                if value > 0 {
                    counter.fetch_add(value, Ordering::Relaxed);
                }
            }
        }
    }
}
