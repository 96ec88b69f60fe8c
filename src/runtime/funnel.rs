//! The funnel builder: settings, a source and sinks, run on timely workers.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use std::cell::Cell;

use super::checkpoint::{Checkpoint, CheckpointWriter, Identity, Loaded, StateConfig, StateError};
use super::connect::execute;
use super::control::CheckpointClock;
use super::emit::{EmitCheckpoints, EmitContext, EmitStart};
use super::ingest::IngestContext;
use super::tally::tally;
use super::worker::{build, ArrangedGauge, Lead, WorkerPlan};
use super::{Accounting, Cluster, Progress, Stop, StopReason};
use crate::connectors::{Sink, SinkError, Source};
use crate::declare::FunnelSettings;
use crate::event::Millis;
use crate::observe::Observer;

/// What a finished run reports.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Per-stream accounting of every record read in the cluster, on process 0; on the
    /// other processes, their own counts (which need not balance: dedup counts a record
    /// where its id is owned, which may be another process).
    pub accounting: Accounting,
    /// Batches emitted to the sinks.
    pub batches: u64,
    /// Why the run stopped before its input was complete (a signal, or a request), if it
    /// did; the sinks then hold a consistent but not final state.
    pub stopped: Option<StopReason>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A source could not be opened or read.
    #[error("source: {0}")]
    Source(#[from] std::io::Error),
    /// A sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Timely could not start or a worker failed.
    #[error("runtime: {0}")]
    Runtime(String),
    /// Another worker of the cluster failed, and this process stopped with it.
    #[error("stopped because {0}")]
    Stopped(StopReason),
    /// The state folder cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The ad funnel, ready to run: the Rust builder that graph files are a front end to.
///
/// # Examples
/// ```
/// use diffmill::connectors::{MemorySink, MemorySource};
/// use diffmill::declare::{Attribution, FunnelSettings, Measures};
/// use diffmill::event::{Event, Impression};
/// use diffmill::runtime::Funnel;
///
/// // One impression whose bid never arrives: it is counted as unattributed.
/// let impression = Event::Impression(Impression { impression_id: 1, bid_id: 2, ts: 60_000, cost_micros: 500 });
/// let sink = MemorySink::new();
/// let report = Funnel::new(FunnelSettings::default())
///     .source(MemorySource::from_events(vec![vec![impression]]))
///     .sink(sink.clone())
///     .workers(2)
///     .run()
///     .unwrap();
/// let rows: Vec<_> = sink.batches().into_iter().flat_map(|b| b.rows).collect();
/// assert_eq!(rows.len(), 1);
/// assert_eq!(rows[0].dims, Attribution::Unattributed);
/// assert_eq!(rows[0].delta, Measures::impression(500));
/// assert!(report.accounting.balances());
/// ```
pub struct Funnel {
    name: String,
    settings: FunnelSettings,
    source: Option<Arc<dyn Source>>,
    /// The sinks of each aggregate.
    sinks: Vec<Vec<Box<dyn Sink>>>,
    progress: Arc<Progress>,
    cluster: Cluster,
    stop: Stop,
    state: Option<StateConfig>,
    fresh: bool,
    prepared: Option<StartFrom>,
    observer: Observer,
}

impl Funnel {
    /// A funnel with the given settings (a resolved
    /// [`Declaration`](crate::declare::Declaration)), no source, no sinks and one worker.
    pub fn new(settings: FunnelSettings) -> Funnel {
        Funnel {
            sinks: settings.aggregates.iter().map(|_| Vec::new()).collect(),
            name: "funnel".to_owned(),
            settings,
            source: None,
            progress: Arc::default(),
            cluster: Cluster::single(1),
            stop: Stop::new(),
            state: None,
            fresh: false,
            prepared: None,
            observer: Observer::disabled(),
        }
    }

    /// Names the funnel (a graph's name): checkpoints say which graph wrote them.
    pub fn named(mut self, name: impl Into<String>) -> Funnel {
        self.name = name.into();
        self
    }

    /// Keeps state in a folder: the run writes a checkpoint every `state.interval`, and
    /// a run whose folder holds one resumes from it (docs/design.md §11). In a cluster every
    /// process is given the same state (only process 0 reads and writes it).
    pub fn state(mut self, state: StateConfig) -> Funnel {
        self.state = Some(state);
        self
    }

    /// Starts from the beginning whatever the state folder holds (its checkpoints are
    /// deleted first).
    pub fn fresh(mut self, fresh: bool) -> Funnel {
        self.fresh = fresh;
        self
    }

    /// The funnel's settings.
    pub fn settings(&self) -> &FunnelSettings {
        &self.settings
    }

    /// Reads input from `source`.
    pub fn source(mut self, source: impl Source + 'static) -> Funnel {
        self.source = Some(Arc::new(source));
        self
    }

    /// Reads input from a shared source.
    pub fn shared_source(mut self, source: Arc<dyn Source>) -> Funnel {
        self.source = Some(source);
        self
    }

    /// Adds a sink of the first aggregate (the only one of a graph without
    /// `[[aggregate]]`); every sink of an aggregate receives every batch, in order.
    pub fn sink(self, sink: impl Sink + 'static) -> Funnel {
        self.aggregate_sink(0, Box::new(sink))
    }

    /// Adds a boxed sink of the first aggregate.
    pub fn boxed_sink(self, sink: Box<dyn Sink>) -> Funnel {
        self.aggregate_sink(0, sink)
    }

    /// Adds a sink of aggregate `aggregate` (its position in the declaration); it receives
    /// that aggregate's rows, and every batch's dead letters and too-late records. A
    /// position beyond the declared aggregates is ignored.
    pub fn aggregate_sink(mut self, aggregate: usize, sink: Box<dyn Sink>) -> Funnel {
        if let Some(sinks) = self.sinks.get_mut(aggregate) {
            sinks.push(sink);
        }
        self
    }

    /// The live counters of the run, for a status line.
    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// The handle that stops the run from outside (a signal handler, the embedding
    /// program): [`Stop::request`] ends reading in every process of the cluster, and the
    /// sinks get one last consistent batch.
    pub fn stop_handle(&self) -> Stop {
        self.stop.clone()
    }

    /// Reports the run to `observer` (metrics, readiness, the dashboard's funnel; see
    /// [`crate::observe`]). Process 0's sinks are timed, and the observer's commit sink
    /// is added after them.
    ///
    /// # Examples
    /// ```
    /// use diffmill::connectors::MemorySource;
    /// use diffmill::declare::FunnelSettings;
    /// use diffmill::event::{Click, Event};
    /// use diffmill::observe::{Observer, RunInfo};
    /// use diffmill::runtime::Funnel;
    ///
    /// let info = RunInfo { graph: "example".into(), process: 0, processes: 1, workers: 1 };
    /// let observer = Observer::new(info, &FunnelSettings::default());
    /// let click = Event::Click(Click { click_id: 1, bid_id: 2, ts: 60_000 });
    /// Funnel::new(FunnelSettings::default())
    ///     .source(MemorySource::from_events(vec![vec![click]]))
    ///     .observe(observer.clone())
    ///     .run()
    ///     .unwrap();
    /// let metrics = observer.metrics_text();
    /// assert!(metrics.contains(r#"diffmill_records_read_total{partition="memory/0",stream="click"} 1"#));
    /// assert!(metrics.contains("diffmill_input_complete 1"));
    /// assert!(observer.readiness().ready);
    /// ```
    pub fn observe(mut self, observer: Observer) -> Funnel {
        observer.watch_progress(&self.progress);
        self.observer = observer;
        self
    }

    /// Sets the number of worker threads [`Funnel::run`] uses (at least 1).
    pub fn workers(mut self, workers: usize) -> Funnel {
        self.cluster = Cluster::single(workers);
        self
    }

    /// Runs as one process of a cluster (which sets the worker threads too). Every
    /// process of the cluster runs the same funnel; only process 0's sinks are used, so
    /// give the others none.
    pub fn cluster(mut self, cluster: Cluster) -> Funnel {
        self.cluster = cluster;
        self
    }

    /// Runs on the chosen workers and processes until the input is done or the run is
    /// stopped ([`Funnel::stop_handle`]).
    ///
    /// # Errors
    /// A [`RunError`] when settings, source, sinks or workers fail.
    pub fn run(self) -> Result<RunReport, RunError> {
        let config = self.cluster.config();
        self.run_on(config)
    }

    /// Runs on a timely configuration (threads, or a cluster of processes).
    ///
    /// Every worker builds the same dataflow; worker 0 of process 0 owns the sinks (and,
    /// with a state folder, reads and writes the checkpoints).
    ///
    /// # Errors
    /// The first failure of any worker: state, source, sink or runtime.
    pub fn run_on(mut self, config: timely::Config) -> Result<RunReport, RunError> {
        self.prepare()?;
        let start = self.prepared.take().unwrap_or(StartFrom::Beginning);
        let Funnel {
            name,
            settings,
            source,
            sinks,
            progress,
            cluster,
            stop,
            state,
            observer,
            ..
        } = self;
        let threads = cluster.threads();
        let checkpointing = state.is_some();
        let lead = match (state, cluster.process()) {
            (Some(state), 0) => {
                let identity = Identity::of(&name, &settings);
                let (checkpoint, emit_start, last) = match start {
                    StartFrom::Checkpoint { checkpoint, .. } => {
                        let frontier = checkpoint.frontier.unwrap_or_default();
                        let emit_start = EmitStart {
                            frontier,
                            next_seq: checkpoint.next_seq,
                            windows: checkpoint.windows.clone(),
                            accounting: checkpoint.accounting,
                            events: checkpoint.events.clone(),
                            rejects: checkpoint.rejects.clone(),
                        };
                        (Some(*checkpoint), Some(emit_start), frontier)
                    }
                    _ => (None, None, 0),
                };
                let writer = CheckpointWriter::new(state.clone()).map_err(|source| {
                    RunError::State(StateError::Io {
                        dir: state.dir.clone(),
                        source,
                    })
                })?;
                let clock = CheckpointClock {
                    interval: state.interval,
                    in_progress: Rc::default(),
                    last: Rc::new(Cell::new(last)),
                };
                Some(SendLead {
                    checkpoint,
                    start: emit_start,
                    writer,
                    identity,
                    clock_interval: clock.interval,
                    clock_last: last,
                })
            }
            _ => None,
        };
        let cluster_accounting: Arc<Mutex<Option<Accounting>>> = Arc::default();
        let worker_accounting = Arc::clone(&cluster_accounting);
        let source = source.ok_or_else(|| RunError::Runtime("the funnel has no source".into()))?;
        let sinks = match cluster.process() {
            0 => observer.wrap_sinks(sinks),
            _ => sinks,
        };
        let sinks = Arc::new(Mutex::new(Some(sinks)));
        let lead = Arc::new(Mutex::new(lead));
        let worker_stop = stop.clone();
        let worker_progress = Arc::clone(&progress);
        let guards = execute(config, move |worker| -> Result<(), RunError> {
            worker_progress
                .workers_started
                .fetch_add(1, Ordering::Relaxed);
            let (partitions, open_failure) = match source.partitions(worker.index(), worker.peers())
            {
                Ok(partitions) => {
                    observer.worker_assigned(threads);
                    (partitions, None)
                }
                Err(error) => {
                    worker_stop.request(StopReason::Failure {
                        worker: worker.index(),
                        message: format!("cannot open the source: {error}"),
                    });
                    (Vec::new(), Some(error))
                }
            };
            let first = worker.index() == 0;
            let sinks = match first {
                true => take(&sinks).unwrap_or_default(),
                false => settings.aggregates.iter().map(|_| Vec::new()).collect(),
            };
            let lead = if first { take(&lead) } else { None };
            let probe = timely::dataflow::ProbeHandle::new();
            let written = timely::dataflow::ProbeHandle::new();
            let ingest_context = IngestContext {
                progress: Arc::clone(&worker_progress),
                stop: worker_stop.clone(),
                failure: Rc::new(RefCell::new(open_failure)),
                output_frontier: probe.clone(),
                written_frontier: written.clone(),
                observer: observer.clone(),
            };
            let emit_context = EmitContext {
                progress: Arc::clone(&worker_progress),
                stop: worker_stop.clone(),
                failure: Rc::new(RefCell::new(None)),
            };
            let plan = WorkerPlan {
                settings: settings.clone(),
                partitions,
                sinks,
                ingest: ingest_context.clone(),
                emit: emit_context.clone(),
                checkpointing,
                lead: lead.map(|lead| lead.into_lead(worker.peers())),
            };
            let traces = worker
                .dataflow::<Millis, _, _>(|scope| build(scope, plan, &probe, &written))
                .map_err(|e| RunError::Runtime(format!("cannot restore the checkpoint: {e}")))?;
            let mut gauge = ArrangedGauge::new(traces, Arc::clone(&worker_progress), &observer);
            while worker.step_or_park(None) {
                gauge.observe(&probe);
            }
            gauge.observe(&probe);
            drop(gauge);

            // Every worker of the process is done with the funnel (the probe saw the
            // cluster's frontier empty), so the process's counters are complete.
            let own = (worker.index() % threads == 0).then(|| worker_progress.accounting());
            if let Some(sum) = tally(worker, own) {
                if let Ok(mut slot) = worker_accounting.lock() {
                    *slot = Some(sum);
                }
            }

            if let Some(error) = ingest_context.failure.borrow_mut().take() {
                return Err(RunError::Source(error));
            }
            let sink_failure = emit_context.failure.borrow_mut().take();
            sink_failure.map_or(Ok(()), |error| Err(RunError::Sink(error)))
        })
        .map_err(RunError::Runtime)?;

        let mut first_error = None;
        for outcome in guards.join() {
            let failure = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(panic) => RunError::Runtime(format!("a worker failed: {panic}")),
            };
            first_error.get_or_insert(failure);
        }
        // A stop that was never announced (every worker here had finished reading) did
        // not change the run: it completed.
        let stopped = stop.reason().filter(|_| stop.was_heard());
        match (first_error, stopped) {
            (Some(error), _) => Err(error),
            (None, Some(reason)) if reason.is_failure() => Err(RunError::Stopped(reason)),
            (None, stopped) => Ok(RunReport {
                accounting: cluster_accounting
                    .lock()
                    .ok()
                    .and_then(|mut slot| slot.take())
                    .unwrap_or_else(|| progress.accounting()),
                batches: progress.batches.load(Ordering::Relaxed),
                stopped,
            }),
        }
    }

    /// Reads the state folder (process 0 of a run with state) and gets the sinks ready:
    /// what the run starts from. [`Funnel::run_on`] calls it; call it first to report
    /// what a run resumes from before it starts. Calling it again does nothing more.
    ///
    /// # Errors
    /// [`RunError::State`] when the state folder holds a checkpoint of another graph or
    /// settings, or no usable one; [`RunError::Sink`] when a sink cannot get ready.
    pub fn prepare(&mut self) -> Result<&StartFrom, RunError> {
        if self.prepared.is_some() {
            return Ok(self.prepared.get_or_insert(StartFrom::Beginning));
        }
        let start = match (&self.state, self.cluster.process()) {
            (Some(state), 0) => {
                if self.fresh {
                    state.clear()?;
                }
                match state.load(&Identity::of(&self.name, &self.settings))? {
                    Loaded::Fresh => StartFrom::Beginning,
                    Loaded::Complete { path } => {
                        state.clear()?;
                        StartFrom::AfterComplete { path }
                    }
                    Loaded::Restore {
                        checkpoint,
                        path,
                        skipped,
                    } => {
                        self.progress.add_restored(&checkpoint.accounting);
                        StartFrom::Checkpoint {
                            checkpoint,
                            path,
                            skipped,
                        }
                    }
                }
            }
            _ => StartFrom::Beginning,
        };
        let restored = match &start {
            StartFrom::Checkpoint { checkpoint, .. } => checkpoint.frontier,
            _ => None,
        };
        for sink in self.sinks.iter_mut().flatten() {
            sink.begin(restored)?;
            let held = sink.resume().map(|r| r.frontier);
            if let (Some(frontier), Some(held)) = (restored, held) {
                if held < frontier {
                    return Err(RunError::Sink(SinkError::Other {
                        sink: sink.name().to_owned(),
                        message: format!(
                            "it holds batches up to frontier {held} only, but the checkpoint \
                             is at {frontier}: it would lack what lies between (was it \
                             rolled back?); start over with --fresh"
                        ),
                    }));
                }
            }
        }
        Ok(self.prepared.insert(start))
    }
}

/// Takes what a shared slot holds (once).
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().ok().and_then(|mut s| s.take())
}

/// What a run starts from.
#[derive(Debug)]
pub enum StartFrom {
    /// The beginning of the input (no state folder, or no checkpoint in it).
    Beginning,
    /// The beginning again: the last run completed its input (its marker is removed).
    AfterComplete {
        /// The marker's file.
        path: std::path::PathBuf,
    },
    /// A checkpoint.
    Checkpoint {
        /// The checkpoint.
        checkpoint: Box<Checkpoint>,
        /// Its file.
        path: std::path::PathBuf,
        /// Newer checkpoint files that could not be used, with why.
        skipped: Vec<(std::path::PathBuf, String)>,
    },
}

/// What the worker that owns the sinks gets in a run with state, before its thread
/// starts (the clock's shared cells are made on the worker's own thread).
struct SendLead {
    checkpoint: Option<Checkpoint>,
    start: Option<EmitStart>,
    writer: CheckpointWriter,
    identity: Identity,
    clock_interval: std::time::Duration,
    clock_last: Millis,
}

impl SendLead {
    fn into_lead(self, workers: usize) -> Lead {
        Lead {
            checkpoint: self.checkpoint,
            start: self.start,
            checkpoints: EmitCheckpoints {
                writer: self.writer,
                identity: self.identity,
                clock: CheckpointClock {
                    interval: self.clock_interval,
                    in_progress: Rc::default(),
                    last: Rc::new(Cell::new(self.clock_last)),
                },
                workers,
            },
        }
    }
}
