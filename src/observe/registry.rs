//! The metrics of a run in one Prometheus registry: names, labels, units and help text.
//!
//! Names follow the Prometheus conventions: a `diffmill_` prefix, the unit in the name
//! (`_seconds`, `_bytes`, `_messages`, `_records`), `_total` on counters, histograms for
//! latencies. Times of event time (watermarks, frontiers) are Unix seconds.
//!
//! The checkpoint metrics (design.md §11) are read from the run's note of its last
//! durable checkpoint when scraped, and appear once a checkpoint has been written.

use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets (seconds), from 1 ms to 2 min: a batch takes milliseconds on a quiet
/// run and seconds when a sink is slow or retrying.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Every metric of a run, registered in its own [`Registry`] (never the process-global
/// default one, so several runs in one process keep apart).
pub struct Metrics {
    registry: Registry,
    /// Records read, per stream and partition.
    pub read: IntCounterVec,
    /// Records dead-lettered (failed to parse or validate, or too far in the future).
    pub dead_lettered: IntCounterVec,
    /// Records too late (every window they could change was final).
    pub too_late: IntCounterVec,
    /// Records that entered late (older than their partition's watermark).
    pub late: IntCounterVec,
    /// Parents admitted only to attribute children (their own window was final).
    pub attribution_only: IntCounterVec,
    /// Records that started a dedup group, per stream.
    pub applied: IntCounterVec,
    /// Records whose id was already held, per stream.
    pub duplicate: IntCounterVec,
    /// Distinct payloads beyond the first per id, per stream.
    pub conflicting: IntCounterVec,
    /// Each partition's watermark (event time, Unix seconds).
    pub watermark: GaugeVec,
    /// Each partition's watermark behind the wall clock, seconds (set at scrape).
    pub watermark_lag: GaugeVec,
    /// Kafka consumer lag: the partition's high watermark minus the read position.
    pub consumer_lag: IntGaugeVec,
    /// The least frontier of this process's ingest operators (Unix seconds).
    pub input_frontier: Gauge,
    /// The dataflow's frontier at the emitter, over the whole cluster (Unix seconds).
    pub frontier: Gauge,
    /// The dataflow frontier behind the wall clock, seconds (set at scrape).
    pub frontier_lag: Gauge,
    /// The frontier of the last batch committed to every sink (Unix seconds).
    pub written_frontier: Gauge,
    /// 1 once the input is complete and its last batch is written.
    pub input_complete: IntGauge,
    /// Batches committed to every sink.
    pub batches: IntCounter,
    /// Aggregate rows committed, per status.
    pub rows: IntCounterVec,
    /// Windows announced final.
    pub windows_finalized: IntCounter,
    /// Each declared measure of each aggregate summed over every row committed.
    pub measures: IntGaugeVec,
    /// Frontier advanced (at this process's ingest) to batch committed to every sink.
    pub batch_latency: Histogram,
    /// Watermark passed a window's end to the batch with its `closed` rows committed.
    pub window_latency: Histogram,
    /// Records held in state, per arrangement (dedup ids and join arrangements).
    pub state_records: IntGaugeVec,
    /// Time one sink took to write one batch, per sink.
    pub sink_write: HistogramVec,
    /// Failed write attempts, per sink (retried ones and the last).
    pub sink_errors: IntCounterVec,
    /// Write attempts retried after a transient error, per sink.
    pub sink_retries: IntCounterVec,
    /// 1 while a sink is failing and retrying a batch.
    pub sink_failing: IntGaugeVec,
    /// Wall-clock time since the last checkpoint was made durable (no children until one
    /// is: the families below appear only in runs with state).
    pub checkpoint_age: GaugeVec,
    /// The last checkpoint's size.
    pub checkpoint_size: IntGaugeVec,
    /// The frontier the last checkpoint holds (Unix seconds).
    pub checkpoint_frontier: GaugeVec,
    /// How long encoding and writing the last checkpoint took.
    pub checkpoint_write: GaugeVec,
    /// Checkpoints made durable by this process.
    pub checkpoints: IntCounterVec,
    /// This process's workers that have their source partitions assigned.
    pub workers_assigned: IntGauge,
    /// 1 when `/ready` answers ready.
    pub ready: IntGauge,
}

impl Metrics {
    /// Registers every metric; `info` labels `diffmill_run_info` (graph, process, ...).
    pub fn new(info: &[(&str, String)]) -> Metrics {
        let registry = Registry::new();
        let per_partition = ["stream", "partition"];
        let records = |name: &str, help: &str| counter(&registry, name, help, &per_partition);
        let per_stream = |name: &str, help: &str| counter(&registry, name, help, &["stream"]);
        let metrics = Metrics {
            read: records("diffmill_records_read_total", "Records read, per stream and partition."),
            dead_lettered: records(
                "diffmill_records_dead_lettered_total",
                "Records that failed to parse or validate (or were too far in the future), sent to the dead-letter output.",
            ),
            too_late: records(
                "diffmill_records_too_late_total",
                "Records too late to apply: every window they could change was final.",
            ),
            late: records(
                "diffmill_records_late_total",
                "Records older than their partition's watermark, applied as corrections.",
            ),
            attribution_only: records(
                "diffmill_records_attribution_only_total",
                "Parents whose own window was final, admitted only to attribute children.",
            ),
            applied: per_stream(
                "diffmill_records_applied_total",
                "Records applied: the first of their id (dedup counts per stream, after the exchange by id).",
            ),
            duplicate: per_stream(
                "diffmill_records_duplicate_total",
                "Records whose id was already held (never counted twice).",
            ),
            conflicting: per_stream(
                "diffmill_records_conflicting_total",
                "Distinct payloads beyond the first for one id.",
            ),
            watermark: gauge_vec(
                &registry,
                "diffmill_partition_watermark_seconds",
                "The partition's watermark: max event time seen minus max_disorder (Unix seconds).",
                &["partition"],
            ),
            watermark_lag: gauge_vec(
                &registry,
                "diffmill_partition_watermark_lag_seconds",
                "How far the partition's watermark is behind the wall clock.",
                &["partition"],
            ),
            consumer_lag: int_gauge_vec(
                &registry,
                "diffmill_kafka_consumer_lag_messages",
                "Kafka partition's high watermark minus the read position.",
                &["partition"],
            ),
            input_frontier: gauge(
                &registry,
                "diffmill_input_frontier_seconds",
                "The least frontier of this process's ingest operators (Unix seconds).",
            ),
            frontier: gauge(
                &registry,
                "diffmill_frontier_seconds",
                "The dataflow's frontier at the emitter, over the whole cluster (Unix seconds).",
            ),
            frontier_lag: gauge(
                &registry,
                "diffmill_frontier_lag_seconds",
                "How far the dataflow's frontier is behind the wall clock.",
            ),
            written_frontier: gauge(
                &registry,
                "diffmill_written_frontier_seconds",
                "The frontier of the last batch committed to every sink (Unix seconds).",
            ),
            input_complete: int_gauge(
                &registry,
                "diffmill_input_complete",
                "1 once the input is complete and its last batch is written.",
            ),
            batches: int_counter(
                &registry,
                "diffmill_batches_written_total",
                "Batches committed to every sink.",
            ),
            rows: counter(
                &registry,
                "diffmill_rows_written_total",
                "Aggregate rows committed to every sink, per status (open, closed, correction), over every aggregate.",
                &["status"],
            ),
            windows_finalized: int_counter(
                &registry,
                "diffmill_windows_finalized_total",
                "Windows announced final, over every aggregate.",
            ),
            measures: int_gauge_vec(
                &registry,
                "diffmill_measure_total",
                "A declared measure of an aggregate summed over every row committed (every window and dims; a retraction lowers it).",
                &["aggregate", "measure"],
            ),
            batch_latency: histogram(
                &registry,
                "diffmill_batch_latency_seconds",
                "From the frontier advancing (at this process's ingest) to the batch up to it committed to every sink.",
            ),
            window_latency: histogram(
                &registry,
                "diffmill_window_latency_seconds",
                "From the watermark passing a window's end to the batch with its closed rows committed.",
            ),
            state_records: int_gauge_vec(
                &registry,
                "diffmill_state_records",
                "Records held in state, per arrangement: ids held by dedup, updates in the join arrangements.",
                &["arrangement"],
            ),
            sink_write: {
                let opts = HistogramOpts::new(
                    "diffmill_sink_write_seconds",
                    "Time one sink took to write one batch, retries included.",
                )
                .buckets(LATENCY_BUCKETS.to_vec());
                register(&registry, HistogramVec::new(opts, &["sink"]))
            },
            sink_errors: counter(
                &registry,
                "diffmill_sink_errors_total",
                "Failed write attempts of a sink, the retried ones included.",
                &["sink"],
            ),
            sink_retries: counter(
                &registry,
                "diffmill_sink_retries_total",
                "Write attempts retried after a transient error.",
                &["sink"],
            ),
            sink_failing: int_gauge_vec(
                &registry,
                "diffmill_sink_failing",
                "1 while the sink is failing and retrying a batch.",
                &["sink"],
            ),
            checkpoint_age: gauge_vec(
                &registry,
                "diffmill_checkpoint_age_seconds",
                "Wall-clock time since the last checkpoint was made durable.",
                &[],
            ),
            checkpoint_size: int_gauge_vec(
                &registry,
                "diffmill_checkpoint_size_bytes",
                "Size of the last checkpoint file.",
                &[],
            ),
            checkpoint_frontier: gauge_vec(
                &registry,
                "diffmill_checkpoint_frontier_seconds",
                "The frontier the last checkpoint holds (Unix seconds).",
                &[],
            ),
            checkpoint_write: gauge_vec(
                &registry,
                "diffmill_checkpoint_write_seconds",
                "How long encoding and writing the last checkpoint took.",
                &[],
            ),
            checkpoints: counter(
                &registry,
                "diffmill_checkpoints_written_total",
                "Checkpoints made durable by this process.",
                &[],
            ),
            workers_assigned: int_gauge(
                &registry,
                "diffmill_workers_assigned",
                "This process's workers that have their source partitions assigned.",
            ),
            ready: int_gauge(
                &registry,
                "diffmill_ready",
                "1 when /ready answers ready: cluster formed, sources assigned, no sink failing.",
            ),
            registry,
        };
        let names: Vec<&str> = info.iter().map(|(name, _)| *name).collect();
        let run_info = int_gauge_vec(
            &metrics.registry,
            "diffmill_run_info",
            "The run: graph, this process's index, processes and workers per process.",
            &names,
        );
        let values: Vec<&str> = info.iter().map(|(_, value)| value.as_str()).collect();
        run_info.with_label_values(&values).set(1);
        metrics
    }

    /// Every metric family, as gathered for a scrape.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// Metric families in the Prometheus text exposition format (version 0.0.4).
    pub fn encode(families: &[MetricFamily]) -> String {
        let mut buffer = Vec::new();
        // Encoding to memory fails only for a metric the registry would have refused.
        let _ = TextEncoder::new().encode(families, &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

// Registration fails only for a malformed name or a name registered twice: both are
// fixed in this file, and checked by the tests that scrape a run.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("a well-formed metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric name registered once");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn int_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::with_opts(Opts::new(name, help)))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(registry, GaugeVec::new(Opts::new(name, help), labels))
}

fn int_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    register(registry, Gauge::with_opts(Opts::new(name, help)))
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::with_opts(Opts::new(name, help)))
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    register(registry, Histogram::with_opts(opts))
}
