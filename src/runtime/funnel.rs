//! The funnel builder: settings, a source and sinks, run on timely workers.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::emit::{emit, EmitContext};
use super::ingest::{ingest, IngestContext};
use crate::dataflow::{ad_funnel, FunnelDedupCounts};
use crate::event::{Millis, StreamKind};

use crate::connectors::{Sink, Source};
use crate::dataflow::FunnelSettings;

use super::Accounting;

/// What a finished run reports.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Per-stream accounting of every record read.
    pub accounting: Accounting,
    /// Batches emitted to the sinks.
    pub batches: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings cannot work.
    #[error("invalid settings: {0}")]
    Settings(#[from] crate::dataflow::SettingsError),
    /// A source could not be opened or read.
    #[error("source: {0}")]
    Source(#[from] std::io::Error),
    /// A sink failed.
    #[error(transparent)]
    Sink(#[from] crate::connectors::SinkError),
    /// Timely could not start or a worker failed.
    #[error("runtime: {0}")]
    Runtime(String),
}

/// The ad funnel, ready to run.
pub struct Funnel {
    settings: FunnelSettings,
    source: Option<Arc<dyn Source>>,
    sinks: Vec<Box<dyn Sink>>,
    workers: usize,
}

impl Funnel {
    /// A funnel with the given settings, no source, no sinks, one worker.
    pub fn new(settings: FunnelSettings) -> Funnel {
        Funnel {
            settings,
            source: None,
            sinks: Vec::new(),
            workers: 1,
        }
    }

    /// Reads input from `source`.
    pub fn source(mut self, source: impl Source + 'static) -> Funnel {
        self.source = Some(Arc::new(source));
        self
    }

    /// Adds a sink; every sink receives every batch.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Funnel {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Runs on `workers` threads in this process.
    pub fn workers(mut self, workers: usize) -> Funnel {
        self.workers = workers.max(1);
        self
    }

    /// Runs the funnel to completion (the source's partitions must be finite).
    ///
    /// # Errors
    /// A [`RunError`] when settings, source, sinks or workers fail.
    pub fn run(self) -> Result<RunReport, RunError> {
        self.settings.validate()?;
        let config = timely::Config::process(self.workers);
        run_on(config, self.settings, self.source, self.sinks)
    }
}

/// What one worker reports at the end of a run.
type WorkerOutcome = Result<RunReport, RunError>;

/// Runs the funnel on the timely `config` (threads, processes) until its input is done.
///
/// Every worker builds the same dataflow; worker 0 of process 0 owns the sinks.
///
/// # Errors
/// The first failure of any worker: source, sink or runtime.
pub fn run_on(
    config: timely::Config,
    settings: FunnelSettings,
    source: Option<Arc<dyn Source>>,
    sinks: Vec<Box<dyn Sink>>,
) -> Result<RunReport, RunError> {
    let source = source.ok_or_else(|| RunError::Runtime("the funnel has no source".into()))?;
    let sinks = Arc::new(Mutex::new(Some(sinks)));
    let abort = Arc::new(AtomicBool::new(false));
    let guards = timely::execute(config, move |worker| -> WorkerOutcome {
        let (partitions, open_failure) = match source.partitions(worker.index(), worker.peers()) {
            Ok(partitions) => (partitions, None),
            Err(error) => {
                abort.store(true, std::sync::atomic::Ordering::Relaxed);
                (Vec::new(), Some(error))
            }
        };
        let sinks = if worker.index() == 0 {
            sinks
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let ingest_context = IngestContext {
            accounting: Rc::new(RefCell::new(Accounting::default())),
            abort: Arc::clone(&abort),
            failure: Rc::new(RefCell::new(open_failure)),
        };
        let emit_context = EmitContext {
            abort: Arc::clone(&abort),
            failure: Rc::new(RefCell::new(None)),
            batches: Rc::new(RefCell::new(0)),
        };
        let dedup_counts: FunnelDedupCounts = Default::default();
        worker.dataflow::<Millis, _, _>(|scope| {
            let (events, rejects) = ingest(scope, &settings, partitions, ingest_context.clone());
            let aggregates = ad_funnel(events, &settings, &dedup_counts);
            emit(aggregates, rejects, &settings, sinks, emit_context.clone())
        });
        while worker.step_or_park(None) {}

        if let Some(error) = ingest_context.failure.borrow_mut().take() {
            return Err(RunError::Source(error));
        }
        if let Some(error) = emit_context.failure.borrow_mut().take() {
            return Err(RunError::Sink(error));
        }
        let mut accounting = *ingest_context.accounting.borrow();
        for kind in StreamKind::ALL {
            let dedup = *dedup_counts[kind.index()].borrow();
            let counts = accounting.stream_mut(kind);
            counts.applied += dedup.applied;
            counts.duplicate += dedup.duplicate;
            counts.conflicting += dedup.conflicting;
        }
        let batches = *emit_context.batches.borrow();
        Ok(RunReport {
            accounting,
            batches,
        })
    })
    .map_err(RunError::Runtime)?;

    let mut report = RunReport::default();
    let mut first_error = None;
    for outcome in guards.join() {
        match outcome {
            Ok(Ok(worker)) => {
                report.accounting.add(&worker.accounting);
                report.batches += worker.batches;
            }
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(panic) => {
                first_error.get_or_insert(RunError::Runtime(format!("a worker failed: {panic}")));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(report),
    }
}
