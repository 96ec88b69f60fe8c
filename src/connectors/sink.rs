//! The sink contract: what a batch is and when its rows become visible.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::declare::{Attribution, Measures, WindowStatus};
use crate::event::{DeadLetter, Millis, TooLate};

/// One change to one aggregate: the diff of the measures of `(window, dims)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AggregateRow {
    /// Window start (inclusive), ms.
    pub window_start: Millis,
    /// Window end (exclusive), ms.
    pub window_end: Millis,
    /// The grouped dims, or *unattributed*.
    pub dims: Attribution,
    /// The change to the measures, in the aggregate's declared order (never all zero).
    pub delta: Measures,
    /// Whether the window is open, closed in this batch, or being corrected.
    pub status: WindowStatus,
}

/// A consistent set of changes to one aggregate (docs/design.md §7).
///
/// A batch carries every change to the aggregates at times in `[previous, frontier)`,
/// consolidated (one row per `(window, dims)`, no zero rows), the windows that became
/// *final* in it (the frontier reached their `end + allowed lateness`; their last value
/// stands and no row for them will follow), and the records rejected at those times.
///
/// Consistency: the sum of the rows of all batches up to `frontier` equals what a
/// from-scratch computation gives over all applied input with times below `frontier`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Sequence number, from 0, one per emitted batch.
    pub seq: u64,
    /// The frontier before this batch.
    pub previous: Millis,
    /// The frontier after this batch; `None` when the input is complete.
    pub frontier: Option<Millis>,
    /// The aggregate changes, sorted by window then dims.
    pub rows: Vec<AggregateRow>,
    /// Starts of the windows that became final in this batch, ascending.
    pub finalized: Vec<Millis>,
    /// Records dead-lettered at times in the batch's range.
    pub dead_letters: Vec<DeadLetter>,
    /// Records too late to apply, rejected at times in the batch's range.
    pub too_late: Vec<TooLate>,
}

impl Batch {
    /// True when the batch carries nothing but a frontier move.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.finalized.is_empty()
            && self.dead_letters.is_empty()
            && self.too_late.is_empty()
    }
}

/// How far a sink got in earlier runs (see [`Sink::resume`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The frontier of the last batch the sink holds.
    pub frontier: Millis,
    /// That batch's sequence number.
    pub seq: u64,
}

/// Why a sink could not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// An I/O failure writing the batch.
    #[error("sink `{sink}`: {source}")]
    Io {
        /// The sink's name.
        sink: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The reader went away (e.g. a closed stdout pipe); the run stops without error.
    #[error("sink `{0}`: the reader closed the output")]
    Closed(String),
    /// Any other failure, with its description.
    #[error("sink `{sink}`: {message}")]
    Other {
        /// The sink's name.
        sink: String,
        /// What happened.
        message: String,
    },
}

/// A destination for batches.
///
/// Contract: a sink belongs to one aggregate of the graph and receives its batches: its
/// rows, with every batch's dead letters and too-late records. Batches arrive in order of
/// `seq`, one call each, on one thread (worker 0 of process 0). `write_batch` makes the whole batch visible to readers as a unit or not at
/// all: a file sink appends and flushes it in one write; a transactional sink commits it
/// in one transaction. When `write_batch` returns `Ok`, the batch is durable to the extent
/// the sink documents. An `Err` stops the run; batches after it are not attempted, and
/// the failed batch must not be partly visible.
///
/// In a cluster, only process 0 has sinks; its worker 0 receives every change by an
/// exchange, so the contract does not depend on the number of workers or processes. When
/// a run is stopped before its input is complete (a signal, a failure elsewhere), the
/// last batch still has a frontier (`Some`), it is consistent at that frontier, and
/// `close` is not called: the sink holds a consistent, not final, state.
pub trait Sink: Send {
    /// The sink's name, for messages.
    fn name(&self) -> &str;

    /// Writes one batch, atomically with respect to readers.
    ///
    /// # Errors
    /// A [`SinkError`] when the batch could not be made visible.
    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError>;

    /// Called once, before the first batch. `restored` is the frontier of the
    /// checkpoint the run resumes from (`None`: the run starts from the beginning). A sink
    /// whose output is files decides here whether to start them again or to keep what
    /// they hold up to their last complete batch. The default does nothing.
    ///
    /// # Errors
    /// A [`SinkError`] when the sink cannot get ready.
    fn begin(&mut self, _restored: Option<Millis>) -> Result<(), SinkError> {
        Ok(())
    }

    /// What this sink already holds from earlier runs, asked after [`Sink::begin`]:
    /// every batch up to and including `seq`, which ended at `frontier`. `None` (the
    /// default) when it holds nothing, or a complete input (then it writes nothing).
    ///
    /// The emitter then ends a batch at exactly `frontier` and gives it the number
    /// `seq`, and writes no batch that ends between the run's start and `frontier`, so
    /// the sink can skip the batches at or below `frontier` and continue its sequence
    /// with `seq + 1` without counting anything twice.
    fn resume(&self) -> Option<Resume> {
        None
    }

    /// The sink's own report of its health, for a sink that retries (the default: none).
    /// The run's `/ready` endpoint is not ready while it says the sink is failing.
    fn health(&self) -> Option<Arc<SinkHealth>> {
        None
    }

    /// Called once after the last batch of a complete input. The default does nothing.
    ///
    /// # Errors
    /// A [`SinkError`] when the sink cannot finish cleanly.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// What a sink that retries tells about itself while it writes: retries so far, and
/// whether it is failing right now (between a transient error and the next success).
///
/// # Examples
/// ```
/// use diffmill::connectors::SinkHealth;
///
/// let health = SinkHealth::default();
/// health.retrying();
/// assert!(health.is_failing());
/// health.recovered();
/// assert!(!health.is_failing());
/// assert_eq!(health.retries(), 1);
/// ```
#[derive(Debug, Default)]
pub struct SinkHealth {
    retries: AtomicU64,
    failing: AtomicBool,
}

impl SinkHealth {
    /// A write attempt failed with a transient error and will be retried.
    pub fn retrying(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.failing.store(true, Ordering::Relaxed);
    }

    /// A write succeeded (or the sink gave up): it is no longer retrying.
    pub fn recovered(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    /// Attempts retried so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// True between a transient error and the next success or the sink giving up.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}
