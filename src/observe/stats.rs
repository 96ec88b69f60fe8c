//! The page's live numbers: throughput, frontiers and their lag, latencies, partitions,
//! sinks and readiness, read from the same sources as the metrics.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use prometheus::core::Collector;
use prometheus::IntCounterVec;
use serde::Serialize;

use super::{now_millis, Readiness, RunInfo, Shared};
use crate::event::Millis;

/// One partition on the page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartitionStats {
    /// Its name (file, `topic/partition`, generator shard).
    pub name: String,
    /// Its watermark (ms of event time).
    pub watermark: Millis,
    /// True once it has given its last record.
    pub done: bool,
}

/// One sink on the page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// True while it is failing and retrying a batch.
    pub failing: bool,
    /// Attempts retried so far.
    pub retries: u64,
}

/// What the page's charts and tables draw, sent every second.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PageStats {
    /// The run.
    pub info: RunInfo,
    /// The wall clock (ms).
    pub now: Millis,
    /// Records read so far, per stream.
    pub read: BTreeMap<String, u64>,
    /// Records late, too late, dead-lettered and duplicate so far, by that name.
    pub rejected: BTreeMap<&'static str, u64>,
    /// The dataflow's frontier at the emitter (ms; `None` before it moved or once the
    /// input is complete).
    pub frontier: Option<Millis>,
    /// True once the dataflow's frontier is empty: the input is complete.
    pub complete: bool,
    /// Batches committed to every sink.
    pub batches: u64,
    /// The last batch's latency, seconds.
    pub batch_latency: Option<f64>,
    /// The last closed window's latency, seconds.
    pub window_latency: Option<f64>,
    /// Records held in state over every arrangement.
    pub state_records: i64,
    /// This process's partitions.
    pub partitions: Vec<PartitionStats>,
    /// The sinks that report their health.
    pub sinks: Vec<SinkStats>,
    /// `/ready`'s answer.
    pub readiness: Readiness,
}

impl Shared {
    /// The page's numbers now.
    pub(super) fn stats(&self) -> PageStats {
        let m = &self.metrics;
        let families = self.refresh();
        let state_records = families
            .iter()
            .filter(|f| f.name() == "diffmill_state_records")
            .flat_map(|f| f.get_metric())
            .map(|metric| metric.get_gauge().get_value() as i64)
            .sum();
        let mut rejected = BTreeMap::new();
        for (name, counter) in [
            ("late", &m.late),
            ("too_late", &m.too_late),
            ("dead_lettered", &m.dead_lettered),
            ("duplicate", &m.duplicate),
        ] {
            rejected.insert(name, by_stream(counter).values().sum());
        }
        let frontier = self.frontier.load(Ordering::Relaxed);
        PageStats {
            info: self.info.clone(),
            now: now_millis(),
            read: by_stream(&m.read),
            rejected,
            frontier: (frontier != 0 && frontier != Millis::MAX).then_some(frontier),
            complete: frontier == Millis::MAX,
            batches: m.batches.get(),
            batch_latency: self.latest.batch_latency.load(),
            window_latency: self.latest.window_latency.load(),
            state_records,
            partitions: self
                .partitions
                .lock()
                .map(|p| p.clone())
                .unwrap_or_default()
                .iter()
                .map(|p| PartitionStats {
                    name: p.name.clone(),
                    watermark: p.watermark.load(Ordering::Relaxed),
                    done: p.done.load(Ordering::Relaxed),
                })
                .collect(),
            sinks: self
                .health
                .sinks()
                .into_iter()
                .map(|(name, health)| SinkStats {
                    name,
                    failing: health.is_failing(),
                    retries: health.retries(),
                })
                .collect(),
            readiness: self.health.readiness(),
        }
    }
}

/// A counter's values summed per `stream` label.
fn by_stream(counter: &IntCounterVec) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for family in counter.collect() {
        for metric in family.get_metric() {
            let stream = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "stream")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            *sums.entry(stream).or_default() += metric.get_counter().get_value() as u64;
        }
    }
    sums
}
