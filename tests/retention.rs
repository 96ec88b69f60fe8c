//! Bounded state: retention releases join and dedup state, so the records held stay
//! bounded on a long run of event time, while without retention they grow with the run.

use std::sync::{Arc, Mutex};

use diffmill::connectors::generator::{Bounds, Generator, GeneratorConfig};
use diffmill::connectors::{Batch, Sink, SinkError};
use diffmill::declare::{Declaration, DurationText, FunnelSpec};
use diffmill::runtime::{Funnel, Progress};

const MINUTE: u64 = 60_000;

/// Samples the records held in state at every batch: `(frontier, held)`.
struct HeldSampler {
    progress: Arc<Progress>,
    samples: Arc<Mutex<Vec<(u64, i64)>>>,
}

impl Sink for HeldSampler {
    fn name(&self) -> &str {
        "held-sampler"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if let Some(frontier) = batch.frontier {
            let held = self.progress.held_records();
            self.samples.lock().unwrap().push((frontier, held));
        }
        Ok(())
    }
}

/// Runs 4 hours of event time at 10 bids/s with the given match bounds; returns the
/// samples and the number of records read.
fn run(bound: u64, workers: usize) -> (Vec<(u64, i64)>, u64) {
    let ms = DurationText::from_millis;
    let funnel = FunnelSpec {
        window: Some(ms(MINUTE)),
        allowed_lateness: ms(MINUTE),
        bid_retention: ms(bound),
        click_retention: ms(bound),
        max_disorder: ms(1_000),
        emit_interval: ms(0),
        ..FunnelSpec::default()
    };
    let settings = Declaration::default().funnel(funnel).resolve().unwrap();
    let config = GeneratorConfig {
        bids: 144_000,
        rate: 10,
        partitions: 2,
        click_rate: 0.2,
        conversion_rate: 0.2,
        conversion_delay_ms: Bounds::new(1_000, 60_000),
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, &settings).unwrap();
    let funnel = Funnel::new(settings).source(generator);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = HeldSampler {
        progress: funnel.progress(),
        samples: Arc::clone(&samples),
    };
    let report = funnel.sink(sampler).workers(workers).run().unwrap();
    let samples = samples.lock().unwrap().clone();
    (samples, report.accounting.total().read)
}

/// The median of the records held while the frontier was in `[from, to)` of the run's
/// span. A median, not the most: arrangements hold retractions not yet merged for a
/// while, more of them when batches are large (a loaded machine), and one such sample
/// must not decide whether state grows.
fn held_in(samples: &[(u64, i64)], from: f64, to: f64) -> i64 {
    let first = samples.first().unwrap().0 as f64;
    let last = samples.last().unwrap().0 as f64;
    let at = |x: f64| first + (last - first) * x;
    let mut held: Vec<i64> = samples
        .iter()
        .filter(|(f, _)| (*f as f64) >= at(from) && (*f as f64) < at(to))
        .map(|(_, held)| *held)
        .collect();
    held.sort_unstable();
    held.get(held.len() / 2).copied().unwrap_or(0)
}

#[test]
fn retention_keeps_state_bounded() {
    for workers in [1, 2] {
        // Bids are held for about bound + bound + window + lateness = 6 minutes of event
        // time: about 3,600 bids plus their children in dedup, and in the arrangements
        // their insertions and not yet merged retractions, whatever the run's length.
        let (samples, read) = run(2 * MINUTE, workers);
        assert!(samples.len() > 12, "too few batches: {}", samples.len());
        let middle = held_in(&samples, 0.25, 0.5);
        let end = held_in(&samples, 0.75, 1.0);
        assert!(middle > 0);
        assert!(
            end as f64 <= middle as f64 * 1.4,
            "state grew: {middle} held mid-run, {end} at the end (workers {workers})"
        );
        assert!(
            (end as f64) < read as f64 * 0.2,
            "{end} records held of {read} read (workers {workers})"
        );
    }
}

#[test]
fn without_retention_state_grows_with_the_run() {
    // Match bounds longer than the run: nothing is ever released before the end.
    let (samples, read) = run(1_000 * 60 * MINUTE, 1);
    let early = held_in(&samples, 0.2, 0.3);
    let late = held_in(&samples, 0.9, 1.0);
    assert!(
        late as f64 >= early as f64 * 2.5,
        "expected growth: {early} held at 20-30 % of the run, {late} at 90-100 %"
    );
    assert!(
        late as f64 > read as f64 * 0.5,
        "{late} held of {read} read"
    );
}
