//! Per-partition counts and watermark, reported by the ingest operator after each poll.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{Gauge, IntCounter, IntGauge};

use super::registry::Metrics;
use crate::connectors::Partition;
use crate::event::{Millis, StreamKind};
use crate::runtime::Accounting;

/// How often a partition's backlog (Kafka consumer lag) is read.
const BACKLOG_EVERY: Duration = Duration::from_millis(500);

/// A partition's watermark as the scrape sees it (for its lag behind the wall clock).
#[derive(Debug)]
pub struct PartitionWatermark {
    /// The partition's name (its `partition` label).
    pub name: String,
    /// Its watermark (ms of event time).
    pub watermark: AtomicU64,
    /// True once it has given its last record.
    pub done: AtomicBool,
}

/// The counters of one stream of one partition.
struct StreamCounters {
    read: IntCounter,
    dead_lettered: IntCounter,
    too_late: IntCounter,
    late: IntCounter,
    attribution_only: IntCounter,
}

/// Reports one partition's counts and watermark into the run's metrics; owned by the
/// ingest operator that reads the partition. A disabled meter does nothing.
pub struct PartitionMeter {
    inner: Option<Box<Enabled>>,
}

struct Enabled {
    metrics: Arc<Metrics>,
    name: String,
    streams: [Option<StreamCounters>; 4],
    watermark_gauge: Gauge,
    watermark: Arc<PartitionWatermark>,
    backlog: Option<IntGauge>,
    backlog_read: Option<Instant>,
}

impl PartitionMeter {
    /// A meter that reports nothing (the run is not observed).
    pub fn disabled() -> PartitionMeter {
        PartitionMeter { inner: None }
    }

    pub(super) fn new(metrics: Arc<Metrics>, watermark: Arc<PartitionWatermark>) -> PartitionMeter {
        let name = watermark.name.clone();
        PartitionMeter {
            inner: Some(Box::new(Enabled {
                watermark_gauge: metrics.watermark.with_label_values(&[name.as_str()]),
                metrics,
                name,
                streams: Default::default(),
                watermark,
                backlog: None,
                backlog_read: None,
            })),
        }
    }

    /// After a poll: the ingest operator's accounting went from `before` to `after` with
    /// this partition's records (its per-activation tally), and the partition's watermark
    /// is `watermark`. `done`: the partition has given its last record.
    pub fn record(
        &mut self,
        before: &Accounting,
        after: &Accounting,
        watermark: Millis,
        partition: &dyn Partition,
        done: bool,
    ) {
        let Some(meter) = self.inner.as_deref_mut() else {
            return;
        };
        for kind in StreamKind::ALL {
            let (from, to) = (before.stream(kind), after.stream(kind));
            if to.read == from.read {
                continue;
            }
            let counters = meter.streams[kind.index()].get_or_insert_with(|| {
                let labels = [kind.name(), meter.name.as_str()];
                let m = &meter.metrics;
                StreamCounters {
                    read: m.read.with_label_values(&labels),
                    dead_lettered: m.dead_lettered.with_label_values(&labels),
                    too_late: m.too_late.with_label_values(&labels),
                    late: m.late.with_label_values(&labels),
                    attribution_only: m.attribution_only.with_label_values(&labels),
                }
            });
            for (counter, delta) in [
                (&counters.read, to.read - from.read),
                (
                    &counters.dead_lettered,
                    to.dead_lettered - from.dead_lettered,
                ),
                (&counters.too_late, to.too_late - from.too_late),
                (&counters.late, to.late - from.late),
                (
                    &counters.attribution_only,
                    to.attribution_only - from.attribution_only,
                ),
            ] {
                if delta > 0 {
                    counter.inc_by(delta);
                }
            }
        }
        if meter.watermark.watermark.swap(watermark, Ordering::Relaxed) != watermark {
            meter.watermark_gauge.set(watermark as f64 / 1000.0);
        }
        if done {
            meter.watermark.done.store(true, Ordering::Relaxed);
        }
        if meter
            .backlog_read
            .is_none_or(|at| at.elapsed() >= BACKLOG_EVERY)
        {
            meter.backlog_read = Some(Instant::now());
            if let Some(backlog) = partition.backlog() {
                let name = meter.name.as_str();
                let gauge = meter
                    .backlog
                    .get_or_insert_with(|| meter.metrics.consumer_lag.with_label_values(&[name]));
                gauge.set(backlog as i64);
            }
        }
    }
}
