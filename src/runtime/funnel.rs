//! The funnel builder: settings, a source and sinks, run on timely workers.

use std::sync::Arc;

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
        let _ = (&self.settings, &self.source, &self.sinks, self.workers);
        Err(RunError::Runtime("not yet implemented".into()))
    }
}
