//! Restarts from checkpoints are exact (docs/design.md §11): a run restored from any
//! checkpoint it wrote, with sinks holding any batch at or after the checkpoint, and on
//! any number of workers, gives batches that continue the sinks' sequence and whose
//! running sums equal the oracle's at every frontier, with the same rejects and the same
//! accounting as a run that never stopped.
//!
//! Every aggregate of a graph has its own sink; all of them must hold the same batches at
//! a checkpoint and continue from it.
//!
//! The first run writes a checkpoint as often as it can (interval 0) while trickling its
//! input, so there are many to restore from. `PROPTEST_CASES` sets the number of random
//! cases (32 by default).

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diffmill::connectors::generator::{Generator, GeneratorConfig};
use diffmill::connectors::{Arrival, Batch, MemorySink, Resume, Sink, SinkError};
use diffmill::declare::{
    AggregateSpec, Declaration, DimensionSpec, FunnelSettings, FunnelSpec, MeasureSpec,
};
use diffmill::event::StreamKind;
use diffmill::runtime::checkpoint::{file, StateConfig};
use diffmill::runtime::{Funnel, RunReport};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use support::batches::{check_batches, check_rejects};
use support::inputs::{case, Case};
use support::oracle::Oracle;
use support::source::Trickle;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/restart.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// A sink that already holds the first batches of a run (up to the one ending at
/// `held.frontier`), skips what it holds, and keeps what it is given after.
#[derive(Clone)]
struct Holding {
    held: Resume,
    written: Arc<Mutex<Vec<Batch>>>,
}

impl Sink for Holding {
    fn name(&self) -> &str {
        "holding"
    }

    fn resume(&self) -> Option<Resume> {
        Some(self.held)
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.frontier.is_some_and(|f| f <= self.held.frontier) {
            return Ok(());
        }
        if let Ok(mut written) = self.written.lock() {
            written.push(batch.clone());
        }
        Ok(())
    }
}

/// The batches each aggregate's sink holds, indexed by aggregate.
type Batches = Vec<Vec<Batch>>;

/// Runs `partitions` with a state folder `dir`, checkpointing as often as it can, with
/// `sinks[a]` the sink of aggregate `a`.
fn run(
    settings: &FunnelSettings,
    partitions: &[Vec<Arrival>],
    chunk: usize,
    dir: &Path,
    workers: usize,
    sinks: Vec<Box<dyn Sink>>,
) -> Result<RunReport, String> {
    let source = Trickle {
        partitions: partitions.to_vec(),
        chunk,
    };
    let mut funnel = Funnel::new(settings.clone())
        .named("restart")
        .source(source)
        .state(StateConfig {
            dir: dir.to_owned(),
            interval: Duration::ZERO,
            keep: usize::MAX,
        });
    for (a, sink) in sinks.into_iter().enumerate() {
        funnel = funnel.aggregate_sink(a, sink);
    }
    funnel
        .workers(workers)
        .run()
        .map_err(|e| format!("run failed: {e}"))
}

/// The checkpoint files of `dir` with their frontiers, oldest first (the completion
/// marker left out). Each must account for every record it says was read: applied,
/// duplicate, too late, dead-lettered, or read but not applied yet.
fn checkpoints(dir: &Path) -> Result<Vec<(std::path::PathBuf, u64)>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let checkpoint = file::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(frontier) = checkpoint.frontier else {
            continue;
        };
        let total = checkpoint.accounting.total();
        let events = checkpoint.events.len() as u64;
        if total.read
            != total.applied + total.duplicate + total.too_late + total.dead_lettered + events
        {
            return Err(format!(
                "checkpoint at {frontier}: read {} != applied {} + duplicate {} + too late {} + \
                 dead-lettered {} + {events} events read and not applied",
                total.read, total.applied, total.duplicate, total.too_late, total.dead_lettered
            ));
        }
        found.push((path, frontier));
    }
    Ok(found)
}

/// Restores from the checkpoint at `path` on `workers` workers, every aggregate's sink
/// holding its `batches[a][..=held]`; returns every batch the sinks then hold and the
/// restored run's state folder (with the checkpoints it wrote).
fn restore_from(
    settings: &FunnelSettings,
    partitions: &[Vec<Arrival>],
    chunk: usize,
    path: &Path,
    batches: &Batches,
    held: usize,
    workers: usize,
) -> Result<(Batches, RunReport, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::copy(path, dir.path().join("checkpoint-0000000001.ckpt"))
        .map_err(|e| e.to_string())?;
    let sinks: Vec<Holding> = batches
        .iter()
        .map(|mine| Holding {
            held: Resume {
                frontier: mine[held].frontier.unwrap_or_default(),
                seq: mine[held].seq,
            },
            written: Arc::default(),
        })
        .collect();
    let report = run(
        settings,
        partitions,
        chunk,
        dir.path(),
        workers,
        sinks
            .iter()
            .map(|s| Box::new(s.clone()) as Box<dyn Sink>)
            .collect(),
    )?;
    let mut all = Batches::new();
    for (mine, sink) in batches.iter().zip(&sinks) {
        let mut held_and_written = mine[..=held].to_vec();
        held_and_written.extend(
            sink.written
                .lock()
                .map_err(|e| e.to_string())?
                .iter()
                .cloned(),
        );
        all.push(held_and_written);
    }
    Ok((all, report, dir))
}

/// Checks a run's batches (every aggregate's) and accounting against the oracle.
fn check(
    settings: &FunnelSettings,
    oracle: &Oracle,
    batches: &Batches,
    report: &RunReport,
    context: &str,
) -> Result<(), String> {
    for (a, mine) in batches.iter().enumerate() {
        check_batches(settings, oracle, a, mine)
            .map_err(|e| format!("{context}, aggregate {a}: {e}"))?;
        check_rejects(oracle, mine).map_err(|e| format!("{context}, aggregate {a}: {e}"))?;
    }
    if report.accounting != oracle.accounting() {
        return Err(format!(
            "{context}: accounting differs:\n restored {:?}\n oracle   {:?}",
            report.accounting.streams,
            oracle.accounting().streams
        ));
    }
    Ok(())
}

/// Runs uninterrupted, then restores from every checkpoint (or every `step`-th) on 1, 2
/// and 3 workers with every aggregate's sink holding a batch at or after it, and checks
/// each result; the 2-worker restore is restored again from the first checkpoint it
/// wrote.
fn check_restarts(
    settings: &FunnelSettings,
    partitions: &[Vec<Arrival>],
    chunk: usize,
    step: usize,
) -> Result<usize, String> {
    let oracle = Oracle::new(settings, partitions);
    let first_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sinks: Vec<MemorySink> = settings
        .aggregates
        .iter()
        .map(|_| MemorySink::new())
        .collect();
    let report = run(
        settings,
        partitions,
        chunk,
        first_dir.path(),
        2,
        sinks
            .iter()
            .map(|s| Box::new(s.clone()) as Box<dyn Sink>)
            .collect(),
    )?;
    let uninterrupted: Batches = sinks.iter().map(MemorySink::batches).collect();
    check(settings, &oracle, &uninterrupted, &report, "uninterrupted")?;
    // Every aggregate's batches have the same sequence and frontiers: those of the first.
    let first = &uninterrupted[0];
    let written = checkpoints(first_dir.path())?;
    for (n, (path, frontier)) in written.iter().enumerate().step_by(step.max(1)) {
        // A batch of the first run ends at every checkpoint's frontier.
        let at = batch_at(first, *frontier)?;
        let later: Vec<usize> = (at..first.len())
            .filter(|&i| first[i].frontier.is_some())
            .collect();
        // The sink holds the batch at the checkpoint, or one a little or much later.
        let holds = [later[0], later[later.len() / 2], later[later.len() - 1]];
        for (workers, &held) in [1, 2, 3].iter().zip(holds.iter()) {
            let (batches, report, dir) = restore_from(
                settings,
                partitions,
                chunk,
                path,
                &uninterrupted,
                held,
                *workers,
            )?;
            let context = format!(
                "checkpoint {n} at {frontier}, sinks holding batch {held}, {workers} workers"
            );
            check(settings, &oracle, &batches, &report, &context)?;
            if *workers != 2 {
                continue;
            }
            // Restored again from the first checkpoint the restored run wrote.
            let Some((again, at_again)) = checkpoints(dir.path())?
                .into_iter()
                .find(|(_, f)| f > frontier)
            else {
                continue;
            };
            let held = batch_at(&batches[0], at_again)?;
            let (batches, report, _) =
                restore_from(settings, partitions, chunk, &again, &batches, held, 1)?;
            check(
                settings,
                &oracle,
                &batches,
                &report,
                &format!("{context}, then its checkpoint at {at_again}"),
            )?;
        }
    }
    Ok(written.len())
}

/// The index of the batch ending at `frontier`.
fn batch_at(batches: &[Batch], frontier: u64) -> Result<usize, String> {
    batches
        .iter()
        .position(|b| b.frontier == Some(frontier))
        .ok_or_else(|| format!("no batch ends at checkpoint frontier {frontier}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_checkpoint_restores_exactly(case in case()) {
        let Case { settings, partitions, chunk } = case;
        check_restarts(&settings, &partitions, chunk, 1).map_err(TestCaseError::fail)?;
    }
}

/// The generator's records (valid and malformed) as partitions of arrivals.
fn generated(generator: &Generator) -> Vec<Vec<Arrival>> {
    (0..generator.partition_count())
        .map(|p| {
            generator
                .partition(p)
                .enumerate()
                .map(|(i, item)| generator.arrival(item, &format!("memory/{p}"), i as u64 + 1))
                .collect()
        })
        .collect()
}

#[test]
fn a_generated_funnel_restores_exactly_from_its_checkpoints() {
    let settings = FunnelSettings {
        emit_interval: Duration::ZERO,
        ..support::settings(60_000, 120_000, 300_000, 300_000, 2_000)
    };
    let config = GeneratorConfig {
        bids: 4_000,
        rate: 5,
        partitions: 3,
        late: 0.01,
        too_late: 0.005,
        duplicate: 0.01,
        conflicting: 0.005,
        orphan: 0.01,
        malformed: 0.005,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, &settings).expect("a generator");
    let partitions = generated(&generator);
    let count = check_restarts(&settings, &partitions, 50, 3).unwrap_or_else(|e| panic!("{e}"));
    assert!(count >= 3, "the first run wrote only {count} checkpoints");
}

#[test]
fn two_aggregates_with_a_bounded_dimension_restore_exactly() {
    let funnel = FunnelSpec {
        allowed_lateness: "1m".parse().expect("a duration"),
        bid_retention: "5m".parse().expect("a duration"),
        click_retention: "5m".parse().expect("a duration"),
        max_disorder: "2s".parse().expect("a duration"),
        emit_interval: "0ms".parse().expect("a duration"),
        ..FunnelSpec::default()
    };
    let settings = Declaration::default()
        .funnel(funnel)
        .dimension(
            "publisher_id",
            DimensionSpec {
                max_values: 3,
                beyond: Default::default(),
            },
        )
        .aggregate(
            AggregateSpec::new("minutely", "1m")
                .group_by(["campaign_id", "publisher_id"])
                .measure(MeasureSpec::count("clicks", StreamKind::Click))
                .measure(MeasureSpec::sum(
                    "spend_micros",
                    StreamKind::Impression,
                    "cost_micros",
                )),
        )
        .aggregate(
            AggregateSpec::new("by_region", "2m")
                .group_by(["region"])
                .measure(MeasureSpec::count("bids", StreamKind::Bid))
                .measure(
                    MeasureSpec::sum("big_orders", StreamKind::Conversion, "value_micros")
                        .filter("value_micros > 1000000"),
                )
                .measure(MeasureSpec::count_distinct(
                    "publishers",
                    StreamKind::Bid,
                    "publisher_id",
                )),
        )
        .resolve()
        .expect("a valid declaration");
    let config = GeneratorConfig {
        bids: 3_000,
        rate: 5,
        partitions: 3,
        late: 0.01,
        too_late: 0.005,
        duplicate: 0.01,
        conflicting: 0.005,
        orphan: 0.01,
        malformed: 0.005,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, &settings).expect("a generator");
    let partitions = generated(&generator);
    let count = check_restarts(&settings, &partitions, 50, 3).unwrap_or_else(|e| panic!("{e}"));
    assert!(count >= 3, "the first run wrote only {count} checkpoints");
}

#[test]
fn a_partition_that_cannot_say_where_it_stands_is_refused() {
    let settings = support::settings(60_000, 0, 0, 0, 0);
    let dir = tempfile::tempdir().expect("a folder");
    let source = support::source::ObservedSource {
        partitions: vec![vec![]],
        chunk: 1,
        at_end: diffmill::connectors::Poll::Done,
        on_poll: Arc::new(|_, _| {}),
    };
    let outcome = Funnel::new(settings)
        .source(source)
        .state(StateConfig::new(dir.path(), Duration::from_secs(1)))
        .run();
    let error = outcome.expect_err("the run is refused").to_string();
    assert!(error.contains("cannot say where it stands"), "{error}");
}
