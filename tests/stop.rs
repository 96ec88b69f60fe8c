//! Stopping a run from the embedding program (`Funnel::stop_handle`), as a live source
//! needs: the input never ends, the run is stopped, and the sinks hold one last batch that
//! is consistent at its frontier (docs/semantics.md §5a), checked against the oracle.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diffmill::connectors::generator::{Generator, GeneratorConfig};
use diffmill::connectors::{Arrival, MemorySink, Poll};
use diffmill::declare::{Attribution, FunnelSettings};
use diffmill::event::Millis;
use diffmill::runtime::{Funnel, StopReason};

use support::oracle::{Aggregates, Oracle};
use support::source::ObservedSource;

/// The partitions as a source whose partitions give their records and then stay open,
/// idle, like a live topic; `drained[p]` is set once partition `p` has given its last
/// record.
fn live(partitions: Vec<Vec<Arrival>>, drained: &Arc<Vec<AtomicBool>>) -> ObservedSource {
    let drained = Arc::clone(drained);
    ObservedSource {
        partitions,
        chunk: 500,
        at_end: Poll::Idle,
        on_poll: Arc::new(move |p, arrivals| {
            if arrivals.is_empty() {
                drained[p].store(true, Ordering::SeqCst);
            }
        }),
    }
}

fn generated(settings: &FunnelSettings) -> Vec<Vec<Arrival>> {
    let config = GeneratorConfig {
        bids: 6_000,
        rate: 20,
        partitions: 3,
        late: 0.01,
        duplicate: 0.01,
        orphan: 0.01,
        malformed: 0.005,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, settings).expect("a generator");
    support::generated_events(&generator)
}

fn sum_rows(settings: &FunnelSettings, batches: &[diffmill::connectors::Batch]) -> Aggregates {
    let mut sums: Aggregates = Aggregates::new();
    for batch in batches {
        support::add_rows(&mut sums, settings, 0, &batch.rows);
    }
    sums
}

#[test]
fn a_stopped_live_run_leaves_a_consistent_last_batch() {
    for workers in [1, 3] {
        let mut settings = support::settings(60_000, 120_000, 300_000, 300_000, 2_000);
        settings.emit_interval = Duration::ZERO;
        let partitions = generated(&settings);
        let drained: Arc<Vec<AtomicBool>> = Arc::new(
            (0..partitions.len())
                .map(|_| AtomicBool::new(false))
                .collect(),
        );
        let source = live(partitions.clone(), &drained);
        let sink = MemorySink::new();
        let funnel = Funnel::new(settings.clone())
            .source(source)
            .sink(sink.clone())
            .workers(workers);
        let stop = funnel.stop_handle();
        let watched = sink.clone();
        let stopper = std::thread::spawn(move || {
            // Stop once batches with rows, an unattributed one among them, are coming out
            // (or the partitions are drained; a drained partition holds the frontier, like
            // an idle live partition).
            let started = Instant::now();
            let under_way = || {
                let batches = watched.batches();
                let rows = batches.iter().filter(|b| !b.rows.is_empty()).count();
                let orphans = batches
                    .iter()
                    .flat_map(|b| &b.rows)
                    .any(|r| r.dims == Attribution::Unattributed);
                rows >= 3 && orphans
            };
            while !drained.iter().all(|d| d.load(Ordering::SeqCst))
                && !under_way()
                && started.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.request(StopReason::Requested { process: 0 });
        });
        let report = funnel.run().expect("the run ends without error");
        stopper.join().expect("the stopper");

        assert_eq!(
            report.stopped,
            Some(StopReason::Requested { process: 0 }),
            "{workers} workers"
        );
        let batches = sink.batches();
        let last = batches.last().expect("at least one batch");
        let frontier: Millis = last
            .frontier
            .expect("a stopped run's last batch has a frontier");
        let oracle = Oracle::new(&settings, &partitions);
        assert_eq!(
            sum_rows(&settings, &batches),
            oracle.expected_prefix(Some(frontier)),
            "{workers} workers: the rows vs the oracle at the last frontier {frontier}"
        );
        assert!(
            sum_rows(&settings, &batches) != oracle.final_values(),
            "the live input was not complete"
        );
        let final_windows: Vec<Millis> = batches.iter().flat_map(|b| b.finalized.clone()).collect();
        for window in &final_windows {
            assert!(
                oracle.final_at(*window) <= frontier,
                "window {window} finalized, not final at {frontier}"
            );
        }
        assert!(
            batches.iter().all(|b| b.frontier.is_some()),
            "no batch claims the input complete"
        );
        assert!(
            batches
                .iter()
                .flat_map(|b| &b.rows)
                .any(|r| r.dims == Attribution::Unattributed),
            "orphans give unattributed rows"
        );
        assert!(report.accounting.balances());
    }
}

#[test]
fn an_idle_partition_does_not_keep_the_others_from_being_read() {
    let settings = support::settings(60_000, 120_000, 300_000, 300_000, 2_000);
    // Partition 0 says one thing and then nothing; partition 1 has 30 s of bids, within
    // the flow-control lead of the frontier that partition 0 holds.
    let quiet = vec![support::bid(1, 1_000, 1)];
    let busy: Vec<_> = (0..300)
        .map(|i| support::bid(100 + i, 1_000 + i * 100, 2))
        .collect();
    let partitions: Vec<Vec<Arrival>> = vec![
        diffmill::connectors::positioned(quiet),
        diffmill::connectors::positioned(busy),
    ];
    let drained: Arc<Vec<AtomicBool>> =
        Arc::new(vec![AtomicBool::new(false), AtomicBool::new(false)]);
    let funnel = Funnel::new(settings).source(live(partitions, &drained));
    let stop = funnel.stop_handle();
    let watcher = std::thread::spawn(move || {
        let started = Instant::now();
        while !drained[1].load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.request(StopReason::Requested { process: 0 });
        drained[1].load(Ordering::SeqCst)
    });
    let report = funnel.run().expect("the run ends");
    assert!(
        watcher.join().expect("the watcher"),
        "the busy partition was read to its end while the quiet one was idle"
    );
    assert_eq!(report.accounting.total().read, 301);
}
