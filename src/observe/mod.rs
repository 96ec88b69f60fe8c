//! Observe a run: Prometheus metrics, health and readiness, and a live funnel dashboard.
//!
//! An [`Observer`] is handed to the [`crate::runtime::Funnel`] builder
//! ([`crate::runtime::Funnel::observe`]). The runtime calls its hooks where the numbers
//! are known: the ingest operator after each poll ([`PartitionMeter`]) and each
//! activation ([`Observer::worker_frontier`]), the worker loop with the dataflow's
//! frontier and the arrangements' sizes, and the emitter through two sinks the observer
//! adds: [`TimedSink`] around each sink, and [`CommitSink`] last, which sees a batch once
//! every other sink has committed it. [`server::Server`] serves it all over HTTP from a
//! thread of its own, so a scrape never blocks a timely worker.
//!
//! - `registry.rs`: every metric, its name, labels and help ([`Metrics`]);
//! - `meter.rs`: per-partition counts and watermarks; `clock.rs`: when the frontier
//!   passed each time (latencies); `health.rs`: readiness; `sinks.rs`: the two sinks;
//! - `dashboard.rs`: the recent windows' funnel; `stats.rs`: the page's live numbers;
//!   `server.rs` and `assets/`: the endpoints and the page.
//!
//! In a cluster every process observes itself: its partitions, its workers, its share of
//! the state. Only process 0 has sinks, so only it has batch, window and sink metrics, and
//! only it serves the dashboard.

mod address;
mod clock;
mod dashboard;
mod health;
mod meter;
mod registry;
pub mod server;
mod sinks;
mod stats;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub use address::ListenAddress;
pub use clock::FrontierClock;
pub use dashboard::{CorrectionView, FunnelSnapshot, FunnelView, RowView, WindowPhase, WindowView};
pub use health::{Health, Readiness};
pub use meter::{PartitionMeter, PartitionWatermark};
pub use registry::Metrics;
pub use sinks::{CommitSink, TimedSink};
pub use stats::{PageStats, PartitionStats, SinkStats};

use crate::connectors::Sink;
use crate::dataflow::DedupCounts;
use crate::declare::FunnelSettings;
use crate::event::{Millis, StreamKind};
use crate::runtime::Progress;

/// Each stream's dedup counts when the workers started (restored from a checkpoint).
type DedupBaseline = [DedupCounts; 4];

/// The label values of a family without labels.
const NO_LABELS: &[&str] = &[];

/// Recent windows the dashboard shows.
const DASHBOARD_WINDOWS: usize = 12;

/// The join arrangements whose sizes [`StateGauge`] reports, in the order
/// [`crate::dataflow::ad_funnel`] returns their traces.
const ARRANGEMENTS: [&str; 2] = ["join_bids_by_bid_id", "join_clicks_by_click_id"];

/// Who the run is: the labels of `diffmill_run_info`, and the page's title.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunInfo {
    /// The graph's name.
    pub graph: String,
    /// This process's index in the cluster.
    pub process: usize,
    /// Processes in the cluster.
    pub processes: usize,
    /// Worker threads per process.
    pub workers: usize,
}

/// The hooks a run reports into, and what the endpoints read. Cheap to clone; a
/// [`Observer::disabled`] one does nothing at every hook.
#[derive(Clone, Default)]
pub struct Observer {
    shared: Option<Arc<Shared>>,
}

/// The latest value of a measurement, for the page (the metrics keep histograms).
#[derive(Debug, Default)]
struct Latest {
    batch_latency: F64Cell,
    window_latency: F64Cell,
}

/// An `f64` in an atomic; NaN until set.
#[derive(Debug)]
struct F64Cell(AtomicU64);

impl Default for F64Cell {
    fn default() -> Self {
        F64Cell(AtomicU64::new(f64::NAN.to_bits()))
    }
}

impl F64Cell {
    fn store(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    fn load(&self) -> Option<f64> {
        Some(f64::from_bits(self.0.load(Ordering::Relaxed))).filter(|v| !v.is_nan())
    }
}

struct Shared {
    metrics: Arc<Metrics>,
    info: RunInfo,
    health: Health,
    input_clock: Mutex<FrontierClock>,
    /// The dataflow's frontier at the emitter (ms); `Millis::MAX` once complete.
    frontier: AtomicU64,
    partitions: Mutex<Vec<Arc<PartitionWatermark>>>,
    /// The run's live counters (dedup counts, the last checkpoint), and the dedup
    /// counts restored from a checkpoint, left out (the metrics count this process's run).
    progress: Mutex<Option<(Arc<Progress>, Option<DedupBaseline>)>>,
    arrangements: [AtomicI64; ARRANGEMENTS.len()],
    latest: Latest,
    /// Scrapes update counters from their sources by difference: one at a time.
    refreshing: Mutex<()>,
    /// The dashboard's funnel of each aggregate (process 0 only; none elsewhere).
    views: Vec<Mutex<FunnelView>>,
    /// Bumped at every batch the view takes.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Observer {
    /// An observer that records nothing: the run is not observed.
    pub fn disabled() -> Observer {
        Observer { shared: None }
    }

    /// An observer of the run `info` with `settings`; process 0 also keeps the
    /// dashboard's funnel.
    pub fn new(info: RunInfo, settings: &FunnelSettings) -> Observer {
        let metrics = Metrics::new(&[
            ("graph", info.graph.clone()),
            ("process", info.process.to_string()),
            ("processes", info.processes.to_string()),
            ("workers", info.workers.to_string()),
        ]);
        let views = match info.process {
            0 => settings
                .aggregates
                .iter()
                .map(|aggregate| {
                    Mutex::new(FunnelView::new(
                        aggregate,
                        &settings.schema,
                        DASHBOARD_WINDOWS,
                    ))
                })
                .collect(),
            _ => Vec::new(),
        };
        Observer {
            shared: Some(Arc::new(Shared {
                metrics: Arc::new(metrics),
                input_clock: Mutex::new(FrontierClock::new(info.workers)),
                info,
                health: Health::default(),
                frontier: AtomicU64::new(0),
                partitions: Mutex::default(),
                progress: Mutex::default(),
                arrangements: Default::default(),
                latest: Latest::default(),
                refreshing: Mutex::default(),
                views,
                changed: tokio::sync::watch::channel(0).0,
            })),
        }
    }

    /// True unless disabled.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// The run observed (`None` when disabled).
    pub fn info(&self) -> Option<&RunInfo> {
        self.shared.as_ref().map(|s| &s.info)
    }

    /// Hook: the run's live counters: dedup counts (applied, duplicate, conflicting, ids
    /// held) and the last checkpoint.
    pub fn watch_progress(&self, progress: &Arc<Progress>) {
        if let Some(shared) = &self.shared {
            if let Ok(mut watched) = shared.progress.lock() {
                *watched = Some((Arc::clone(progress), None));
            }
        }
    }

    /// Hook: a meter for the partition named `partition`, owned by its ingest operator.
    pub fn partition_meter(&self, partition: &str) -> PartitionMeter {
        let Some(shared) = &self.shared else {
            return PartitionMeter::disabled();
        };
        let watermark = Arc::new(PartitionWatermark {
            name: partition.to_owned(),
            watermark: AtomicU64::new(0),
            done: Default::default(),
        });
        if let Ok(mut partitions) = shared.partitions.lock() {
            partitions.push(Arc::clone(&watermark));
        }
        PartitionMeter::new(Arc::clone(&shared.metrics), watermark)
    }

    /// Hook: a worker of this process (of `threads`) has its source partitions.
    pub fn worker_assigned(&self, threads: usize) {
        if let Some(shared) = &self.shared {
            shared.health.worker_assigned(threads);
            // Workers start after a checkpoint is restored: what dedup counts now is the
            // restored earlier runs' share.
            if let Ok(mut watched) = shared.progress.lock() {
                if let Some((progress, baseline @ None)) = watched.as_mut() {
                    *baseline = Some(std::array::from_fn(|i| progress.dedup[i].snapshot()));
                }
            }
            if let Ok(mut clock) = shared.input_clock.lock() {
                clock.expect(threads);
            }
        }
    }

    /// Hook: worker `worker`'s ingest operator is at `frontier` (`None`: done).
    pub fn worker_frontier(&self, worker: usize, frontier: Option<Millis>) {
        if let Some(shared) = &self.shared {
            if let Ok(mut clock) = shared.input_clock.lock() {
                if let Some(moved) = clock.report(worker, frontier) {
                    if moved != Millis::MAX {
                        shared.metrics.input_frontier.set(moved as f64 / 1000.0);
                    }
                }
            }
        }
    }

    /// Hook: the dataflow's frontier at the emitter (`None`: the input is complete).
    pub fn dataflow_frontier(&self, frontier: Option<Millis>) {
        if let Some(shared) = &self.shared {
            let frontier = frontier.unwrap_or(Millis::MAX);
            if shared.frontier.swap(frontier, Ordering::Relaxed) != frontier
                && frontier != Millis::MAX
            {
                shared.metrics.frontier.set(frontier as f64 / 1000.0);
            }
        }
    }

    /// Hook: a gauge of the join arrangements' sizes, for one worker.
    pub fn state_gauge(&self) -> StateGauge {
        StateGauge {
            shared: self.shared.clone(),
            reported: [0; ARRANGEMENTS.len()],
        }
    }

    /// Hook: the sinks of each aggregate of process 0, each timed, and a commit sink
    /// last for every aggregate (the first one's also counts the batches).
    pub fn wrap_sinks(&self, sinks: Vec<Vec<Box<dyn Sink>>>) -> Vec<Vec<Box<dyn Sink>>> {
        let Some(shared) = &self.shared else {
            return sinks;
        };
        sinks
            .into_iter()
            .enumerate()
            .map(|(aggregate, sinks)| {
                let mut wrapped: Vec<Box<dyn Sink>> = Vec::with_capacity(sinks.len() + 1);
                for sink in sinks {
                    // A sink that does not report its health is listed as never failing.
                    let health = sink.health().unwrap_or_default();
                    shared.health.watch_sink(sink.name(), health);
                    wrapped.push(Box::new(TimedSink::new(sink, shared)));
                }
                wrapped.push(Box::new(CommitSink::new(Arc::clone(shared), aggregate)));
                wrapped
            })
            .collect()
    }

    /// The run failed: not ready any more.
    pub fn run_failed(&self) {
        if let Some(shared) = &self.shared {
            shared.health.failed();
        }
    }

    /// Ready or not, and why not.
    pub fn readiness(&self) -> Readiness {
        match &self.shared {
            Some(shared) => shared.health.readiness(),
            None => Readiness {
                ready: false,
                reasons: vec!["the run is not observed".to_owned()],
            },
        }
    }

    /// Every metric in the Prometheus text format, gauges read from their sources now.
    pub fn metrics_text(&self) -> String {
        match &self.shared {
            Some(shared) => Metrics::encode(&shared.refresh()),
            None => String::new(),
        }
    }

    /// The dashboard's funnel of each aggregate, in declaration order (`None` on
    /// processes other than 0).
    pub fn funnel(&self) -> Option<Vec<FunnelSnapshot>> {
        let shared = self.shared.as_ref()?;
        if shared.info.process != 0 {
            return None;
        }
        shared
            .views
            .iter()
            .map(|view| view.lock().ok().map(|v| v.snapshot()))
            .collect()
    }

    /// The page's live numbers.
    pub fn stats(&self) -> Option<PageStats> {
        self.shared.as_ref().map(|shared| shared.stats())
    }

    /// A receiver told of every batch the dashboard's funnel takes.
    pub fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.shared.as_ref().map(|s| s.changed.subscribe())
    }
}

/// One worker's report of its join arrangements' sizes (see [`Observer::state_gauge`]).
pub struct StateGauge {
    shared: Option<Arc<Shared>>,
    reported: [i64; ARRANGEMENTS.len()],
}

impl StateGauge {
    /// The worker's arrangements hold `held[i]` updates (in the order of
    /// [`crate::dataflow::ad_funnel`]'s traces; missing ones hold none).
    pub fn report(&mut self, held: &[i64]) {
        let Some(shared) = &self.shared else {
            return;
        };
        for (i, reported) in self.reported.iter_mut().enumerate() {
            let now = held.get(i).copied().unwrap_or(0);
            if now != *reported {
                shared.arrangements[i].fetch_add(now - *reported, Ordering::Relaxed);
                *reported = now;
            }
        }
    }
}

impl Shared {
    /// Brings the metrics kept elsewhere up to date and gathers every family.
    fn refresh(&self) -> Vec<prometheus::proto::MetricFamily> {
        let _one_at_a_time = self.refreshing.lock();
        let m = &self.metrics;
        let sync = |counter: &prometheus::IntCounter, value: u64| {
            counter.inc_by(value.saturating_sub(counter.get()));
        };
        let watched = self.progress.lock().ok().and_then(|w| w.clone());
        if let Some((progress, baseline)) = watched {
            for kind in StreamKind::ALL {
                let counts = &progress.dedup[kind.index()];
                let now = counts.snapshot();
                let before = baseline.map(|b| b[kind.index()]).unwrap_or_default();
                let stream = [kind.name()];
                let since = |now: u64, before: u64| now.saturating_sub(before);
                sync(
                    &m.applied.with_label_values(&stream),
                    since(now.applied, before.applied),
                );
                sync(
                    &m.duplicate.with_label_values(&stream),
                    since(now.duplicate, before.duplicate),
                );
                sync(
                    &m.conflicting.with_label_values(&stream),
                    since(now.conflicting, before.conflicting),
                );
                m.state_records
                    .with_label_values(&[format!("dedup_{}", kind.name()).as_str()])
                    .set(counts.held());
            }
            let note = progress.checkpoint.lock().ok().and_then(|n| n.clone());
            if let Some(note) = note {
                m.checkpoint_age
                    .with_label_values(NO_LABELS)
                    .set(note.at.elapsed().as_secs_f64());
                m.checkpoint_size
                    .with_label_values(NO_LABELS)
                    .set(note.bytes as i64);
                if let Some(frontier) = note.frontier {
                    m.checkpoint_frontier
                        .with_label_values(NO_LABELS)
                        .set(frontier as f64 / 1000.0);
                }
                m.checkpoint_write
                    .with_label_values(NO_LABELS)
                    .set(note.took.as_secs_f64());
                sync(&m.checkpoints.with_label_values(NO_LABELS), note.count);
            }
        }
        for (name, held) in ARRANGEMENTS.iter().zip(&self.arrangements) {
            m.state_records
                .with_label_values(&[*name])
                .set(held.load(Ordering::Relaxed));
        }
        let now = now_millis();
        let lag = |time: Millis| (now as f64 - time as f64) / 1000.0;
        for partition in self
            .partitions
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
        {
            let label = [partition.name.as_str()];
            if partition.done.load(Ordering::Relaxed) {
                let _ = m.watermark_lag.remove_label_values(&label);
            } else {
                let watermark = partition.watermark.load(Ordering::Relaxed);
                m.watermark_lag
                    .with_label_values(&label)
                    .set(lag(watermark));
            }
        }
        match self.frontier.load(Ordering::Relaxed) {
            0 => {}
            Millis::MAX => m.frontier_lag.set(0.0),
            frontier => m.frontier_lag.set(lag(frontier)),
        }
        for (name, health) in self.health.sinks() {
            let label = [name.as_str()];
            let retries = m.sink_retries.with_label_values(&label);
            let new = health.retries().saturating_sub(retries.get());
            retries.inc_by(new);
            m.sink_errors.with_label_values(&label).inc_by(new);
            m.sink_failing
                .with_label_values(&label)
                .set(i64::from(health.is_failing()));
        }
        m.workers_assigned.set(self.health.assigned() as i64);
        m.ready.set(i64::from(self.health.readiness().ready));
        m.gather()
    }
}

/// The wall clock in ms since the Unix epoch.
fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}
