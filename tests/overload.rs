//! Overload: a sink that is slower than the sources. Reading slows down to the sink's
//! pace instead of buffering without bound (flow control holds each partition within
//! `MAX_LEAD` of event time of the dataflow's frontier, and the frontier stands still
//! while worker 0, which writes the sinks, is blocked in a write: it holds its share of
//! every join), and nothing is lost: the output equals the oracle and the accounting
//! balances.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diffmill::connectors::generator::{Generator, GeneratorConfig};
use diffmill::connectors::{Arrival, Batch, Poll, Sink, SinkError};
use diffmill::declare::FunnelSettings;
use diffmill::event::Millis;
use diffmill::runtime::{Funnel, MAX_LEAD};

use support::oracle::{Aggregates, Oracle};
use support::source::ObservedSource;

/// Most records one poll of a test partition gives.
const CHUNK: usize = 500;
/// What the sink sleeps per batch.
const SLEEP: Duration = Duration::from_millis(15);

/// The event times of the records read so far, shared by the partitions and the sink.
type ReadLog = Arc<Mutex<Vec<Millis>>>;

/// The partitions as a source that logs the event time of every record it gives.
fn logged(partitions: Vec<Vec<Arrival>>, read: ReadLog) -> ObservedSource {
    ObservedSource {
        partitions,
        chunk: CHUNK,
        at_end: Poll::Done,
        on_poll: Arc::new(move |_, arrivals| {
            let mut read = read.lock().expect("the read log");
            read.extend(arrivals.iter().filter_map(|arrival| match arrival {
                Arrival::Event { record, .. } => Some(record.ts),
                Arrival::DeadLetter(_) => None,
            }));
        }),
    }
}

/// What the slow sink saw at each batch: the frontier, the records read with an event
/// time at or after it (read ahead of what is written), and the bound they must keep.
#[derive(Clone, Copy, Debug)]
struct Observation {
    frontier: Millis,
    ahead: usize,
    bound: usize,
}

/// A sink that sleeps per batch and keeps the batches, observing the read-ahead.
struct SlowSink {
    batches: Arc<Mutex<Vec<Batch>>>,
    observations: Arc<Mutex<Vec<Observation>>>,
    read: ReadLog,
    /// Every input event time, sorted, to compute the bound.
    input: Arc<Vec<Millis>>,
    lead: Millis,
    partitions: usize,
    written: Arc<AtomicU64>,
}

impl Sink for SlowSink {
    fn name(&self) -> &str {
        "slow"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if let Some(frontier) = batch.frontier {
            let ahead = self
                .read
                .lock()
                .expect("the read log")
                .iter()
                .filter(|ts| **ts >= frontier)
                .count();
            // Records of the input within the lead of the frontier, plus one poll per
            // partition that may overshoot it.
            let within = |until: Millis| self.input.partition_point(|ts| *ts < until);
            let bound = within(frontier.saturating_add(self.lead)) - within(frontier)
                + self.partitions * CHUNK;
            self.observations
                .lock()
                .expect("the observations")
                .push(Observation {
                    frontier,
                    ahead,
                    bound,
                });
        }
        std::thread::sleep(SLEEP);
        self.batches
            .lock()
            .expect("the batches")
            .push(batch.clone());
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn generated(settings: &FunnelSettings, partitions: usize, bids: u64) -> Vec<Vec<Arrival>> {
    let config = GeneratorConfig {
        bids,
        rate: 4,
        partitions,
        disorder: 0.05,
        late: 0.01,
        duplicate: 0.01,
        orphan: 0.01,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, settings).expect("a generator");
    support::generated_events(&generator)
}

fn sum_rows(settings: &FunnelSettings, batches: &[Batch]) -> Aggregates {
    let mut sums: Aggregates = Aggregates::new();
    for batch in batches {
        support::add_rows(&mut sums, settings, 0, &batch.rows);
    }
    sums
}

/// Runs `partitions` through the slow sink on `workers` workers and checks the output,
/// the accounting and the read-ahead at every batch.
fn run_slow(label: &str, settings: &FunnelSettings, partitions: Vec<Vec<Arrival>>, workers: usize) {
    let read: ReadLog = Arc::default();
    let mut input: Vec<Millis> = partitions
        .iter()
        .flatten()
        .filter_map(|arrival| match arrival {
            Arrival::Event { record, .. } => Some(record.ts),
            Arrival::DeadLetter(_) => None,
        })
        .collect();
    input.sort_unstable();
    let records = input.len();
    let span = input.last().copied().unwrap_or(0) - input.first().copied().unwrap_or(0);
    let batches: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let observations: Arc<Mutex<Vec<Observation>>> = Arc::default();
    let sink = SlowSink {
        batches: Arc::clone(&batches),
        observations: Arc::clone(&observations),
        read: Arc::clone(&read),
        input: Arc::new(input),
        // The flow-control lead, and what a partition's watermark trails its records by,
        // twice over for the frontier the ingest saw being older than the batch's.
        lead: 2 * (MAX_LEAD + settings.max_disorder),
        partitions: partitions.len(),
        written: Arc::default(),
    };
    let started = Instant::now();
    let report = Funnel::new(settings.clone())
        .source(logged(partitions.clone(), read))
        .sink(sink)
        .workers(workers)
        .run()
        .expect("a slow sink is not a failure");
    let elapsed = started.elapsed();

    let batches = batches.lock().expect("the batches").clone();
    let observations = observations.lock().expect("the observations").clone();
    let oracle = Oracle::new(settings, &partitions);
    assert_eq!(
        sum_rows(settings, &batches),
        oracle.final_values(),
        "{label}: the output vs the oracle"
    );
    assert_eq!(
        batches.last().and_then(|b| b.frontier),
        None,
        "{label}: the last batch closes the input"
    );
    assert!(
        report.accounting.balances(),
        "{label}: {:?}",
        report.accounting
    );
    assert_eq!(
        report.accounting.total().read,
        records as u64,
        "{label}: every record read once"
    );
    let worst = observations
        .iter()
        .max_by_key(|o| o.ahead)
        .copied()
        .expect("observations");
    eprintln!(
        "{label}: {records} records over {span} ms of event time, {} batches in {elapsed:?}; \
         most read ahead of the written frontier: {} (bound {} at frontier {}); peak RSS {} kB",
        observations.len(),
        worst.ahead,
        worst.bound,
        worst.frontier,
        diffmill::bench::peak_rss_bytes().unwrap_or(0) / 1024
    );
    for o in &observations {
        assert!(
            o.ahead <= o.bound,
            "{label}: {} records read ahead of the written frontier {}, more than the bound {} \
             ({records} records in all)",
            o.ahead,
            o.frontier,
            o.bound
        );
    }
    assert!(
        worst.ahead < records / 4,
        "{label}: a quarter of the input was read ahead of the sink ({} of {records})",
        worst.ahead
    );
    // The sink was the bottleneck: many batches, each a sleep.
    assert!(
        observations.len() >= 20,
        "{label}: only {} batches; the sink was not slow enough to matter",
        observations.len()
    );
}

#[test]
fn a_slow_sink_slows_the_sources_down_and_loses_nothing() {
    let mut settings = support::settings(60_000, 120_000, 300_000, 300_000, 2_000);
    settings.emit_interval = Duration::ZERO;
    // 4 bids per second over about an hour of event time, in 3 partitions.
    let partitions = generated(&settings, 3, 15_000);
    run_slow("1 worker", &settings, partitions.clone(), 1);
    run_slow("2 workers", &settings, partitions, 2);
}

#[test]
fn a_slow_sink_holds_back_a_worker_that_does_not_write_it() {
    let mut settings = support::settings(60_000, 120_000, 300_000, 300_000, 2_000);
    settings.emit_interval = Duration::ZERO;
    // Worker 0 (which writes the sink) owns a partition that ends at once; worker 1 owns
    // the long one, and nothing of worker 0's own reading holds the frontier back.
    let mut partitions = generated(&settings, 1, 15_000);
    partitions.insert(0, Vec::new());
    run_slow(
        "2 workers, worker 0 without input",
        &settings,
        partitions,
        2,
    );
}
