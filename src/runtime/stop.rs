//! Stopping a run before its input is done: the request, its reason, and how it spreads
//! through the cluster.
//!
//! A stop is requested in one process (a signal, a failed source or sink, or the
//! embedding program). Every worker that learns of it announces a [`StopNotice`] on a
//! stream broadcast to all workers of the cluster and stops reading. The notice reaches
//! the emitter *before* the frontier can pass it (it is data in the dataflow), so the
//! emitter always knows that an empty frontier after a stop means "abandoned", never
//! "input complete": it writes one last batch up to the frontier reached, which is
//! consistent (docs/design.md §7) but not final, and does not close the sinks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Why a run stopped before its input was complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// Process `process` received a signal (`SIGINT`, `SIGTERM`).
    Signal {
        /// The index of the process that received it.
        process: usize,
        /// The signal's name.
        signal: String,
    },
    /// Worker `worker` (cluster-wide index) failed: a source or a sink.
    Failure {
        /// The failing worker.
        worker: usize,
        /// What failed.
        message: String,
    },
    /// The embedding program asked process `process` to stop ([`Stop::request`]).
    Requested {
        /// The index of the process that asked.
        process: usize,
    },
}

impl StopReason {
    /// True for a failure, false for a deliberate stop.
    pub fn is_failure(&self) -> bool {
        matches!(self, StopReason::Failure { .. })
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Signal { process, signal } => {
                write!(f, "process {process} received {signal}")
            }
            StopReason::Failure { worker, message } => {
                write!(f, "worker {worker} failed: {message}")
            }
            StopReason::Requested { process } => write!(f, "process {process} was asked to stop"),
        }
    }
}

/// The message broadcast to every worker when a stop is requested.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopNotice {
    /// Why the run stops.
    pub reason: StopReason,
}

/// A process's handle on stopping: shared by its workers, its signal handler and the
/// embedding program.
///
/// `request` is local (this process wants to stop); `hear` records a notice that arrived
/// from the cluster. Either makes [`Stop::is_stopping`] true, which every ingest operator
/// checks between reads.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    state: Arc<StopState>,
}

#[derive(Debug, Default)]
struct StopState {
    stopping: AtomicBool,
    heard: AtomicBool,
    reason: Mutex<Option<StopReason>>,
}

impl Stop {
    /// A handle with no stop requested.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the run to stop for `reason`. The first reason stands; later ones are
    /// ignored.
    pub fn request(&self, reason: StopReason) {
        if let Ok(mut slot) = self.state.reason.lock() {
            slot.get_or_insert(reason);
        }
        self.state.stopping.store(true, Ordering::SeqCst);
    }

    /// Records a notice that arrived through the dataflow (the first reason stands).
    pub fn hear(&self, reason: StopReason) {
        self.request(reason);
        self.state.heard.store(true, Ordering::SeqCst);
    }

    /// True once a notice arrived through the dataflow: the stop took effect. A stop
    /// requested after every worker of this process had finished reading is never
    /// announced, and the run then completes normally.
    pub fn was_heard(&self) -> bool {
        self.state.heard.load(Ordering::SeqCst)
    }

    /// True once a stop was requested here or heard from the cluster.
    pub fn is_stopping(&self) -> bool {
        self.state.stopping.load(Ordering::SeqCst)
    }

    /// The reason of the stop, if any.
    pub fn reason(&self) -> Option<StopReason> {
        self.state.reason.lock().ok().and_then(|slot| slot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_stands() {
        let stop = Stop::new();
        assert!(!stop.is_stopping());
        assert_eq!(stop.reason(), None);
        stop.request(StopReason::Requested { process: 0 });
        assert!(stop.is_stopping() && !stop.was_heard());
        stop.hear(StopReason::Failure {
            worker: 3,
            message: "disk".into(),
        });
        assert!(stop.is_stopping() && stop.was_heard());
        assert_eq!(stop.reason(), Some(StopReason::Requested { process: 0 }));
        assert!(!StopReason::Requested { process: 0 }.is_failure());
    }
}
