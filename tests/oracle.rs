//! The dataflow against the from-scratch oracle, on random funnels, across 1, 2 and 4
//! workers (docs/semantics.md §6).
//!
//! Each case runs twice per worker count: from a [`MemorySource`], and from a [`Trickle`]
//! source with the same partitions whose partitions pause (poll `Idle`) after every chunk,
//! so that the frontier stops at many more places and more batches are checked.
//!
//! `PROPTEST_CASES` sets the number of cases (256 by default); failing seeds are kept in
//! `proptest-regressions/oracle.txt` and replayed first.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use diffmill::connectors::{
    owner, Arrival, Batch, MemorySink, MemorySource, Partition, Poll, Source,
};
use diffmill::declare::WindowStatus;
use diffmill::event::Millis;
use diffmill::runtime::Funnel;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use support::inputs::{case, Case};
use support::oracle::{too_late_key, Aggregates, Oracle};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/oracle.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn dataflow_matches_the_oracle(case in case()) {
        let oracle = Oracle::new(&case.settings, &case.partitions);
        prop_assert!(oracle.accounting().balances(), "the oracle's accounting does not balance");
        for workers in [1, 2, 4] {
            let memory = MemorySource::new(case.partitions.clone()).with_chunk(case.chunk);
            check_run(&case, &oracle, memory, workers).map_err(|e| {
                TestCaseError::fail(format!("memory source, {workers} workers: {e}"))
            })?;
            let trickle = Trickle {
                partitions: case.partitions.clone(),
                chunk: case.chunk,
            };
            check_run(&case, &oracle, trickle, workers).map_err(|e| {
                TestCaseError::fail(format!("trickle source, {workers} workers: {e}"))
            })?;
        }
    }
}

/// The partitions of a case, giving one chunk per poll and pausing (`Idle`) after each.
struct Trickle {
    partitions: Vec<Vec<Arrival>>,
    chunk: usize,
}

struct TricklePartition {
    name: String,
    arrivals: Vec<Arrival>,
    next: usize,
    chunk: usize,
    pause: bool,
}

impl Source for Trickle {
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        Ok(self
            .partitions
            .iter()
            .enumerate()
            .filter(|(p, _)| owner(*p, workers) == worker)
            .map(|(p, arrivals)| {
                Box::new(TricklePartition {
                    name: format!("memory/{p}"),
                    arrivals: arrivals.clone(),
                    next: 0,
                    chunk: self.chunk,
                    pause: false,
                }) as Box<dyn Partition>
            })
            .collect())
    }
}

impl Partition for TricklePartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        if self.pause && self.next < self.arrivals.len() {
            self.pause = false;
            return Ok(Poll::Idle);
        }
        let take = self.chunk.min(max).min(self.arrivals.len() - self.next);
        out.extend_from_slice(&self.arrivals[self.next..self.next + take]);
        self.next += take;
        self.pause = true;
        Ok(if self.next == self.arrivals.len() {
            Poll::Done
        } else {
            Poll::Ready
        })
    }
}

/// Runs the dataflow on `case` from `source` with `workers` workers and checks the run.
fn check_run(
    case: &Case,
    oracle: &Oracle,
    source: impl Source + 'static,
    workers: usize,
) -> Result<(), String> {
    let sinks: Vec<MemorySink> = case
        .settings
        .aggregates
        .iter()
        .map(|_| MemorySink::new())
        .collect();
    let mut funnel = Funnel::new(case.settings.clone()).source(source);
    for (a, sink) in sinks.iter().enumerate() {
        funnel = funnel.aggregate_sink(a, Box::new(sink.clone()));
    }
    let report = funnel
        .workers(workers)
        .run()
        .map_err(|e| format!("run failed: {e}"))?;
    for (a, sink) in sinks.iter().enumerate() {
        let batches = sink.batches();
        if report.batches != batches.len() as u64 {
            return Err(format!(
                "report says {} batches, aggregate {a}'s sink got {}",
                report.batches,
                batches.len()
            ));
        }
        check_batches(case, oracle, a, &batches).map_err(|e| format!("aggregate {a}: {e}"))?;
        check_rejects(oracle, &batches)?;
    }
    let accounting = report.accounting;
    if accounting != oracle.accounting() {
        return Err(format!(
            "accounting differs:\n dataflow {:?}\n oracle   {:?}",
            accounting.streams,
            oracle.accounting().streams
        ));
    }
    if !accounting.balances() {
        return Err(format!(
            "accounting does not balance: {:?}",
            accounting.streams
        ));
    }
    Ok(())
}

/// Checks (a), (b), (e) and (f) for aggregate `aggregate`: running sums, row statuses and
/// shape, finalization.
fn check_batches(
    case: &Case,
    oracle: &Oracle,
    aggregate: usize,
    batches: &[Batch],
) -> Result<(), String> {
    let window = case.settings.aggregates[aggregate].window.length;
    let lateness = case.settings.aggregates[aggregate].window.allowed_lateness;
    let mine = |all: Aggregates| -> Aggregates {
        all.into_iter().filter(|((a, _, _), _)| *a == aggregate).collect()
    };
    let mut sums = Aggregates::new();
    let mut previous: Millis = 0;
    let mut complete = false;
    let mut finalized_in: BTreeMap<Millis, u64> = BTreeMap::new();
    let mut with_rows: BTreeSet<Millis> = BTreeSet::new();
    for (index, batch) in batches.iter().enumerate() {
        let at = format!(
            "batch {} ({} -> {:?})",
            batch.seq, batch.previous, batch.frontier
        );
        if complete {
            return Err(format!("{at} follows the batch that completed the input"));
        }
        if batch.seq != index as u64 || batch.previous != previous {
            return Err(format!(
                "{at}: expected seq {index} from frontier {previous}"
            ));
        }
        if batch.frontier.is_some_and(|f| f < previous) {
            return Err(format!("{at}: the frontier went back"));
        }
        let became_final = |end: Millis| {
            previous < end + lateness && batch.frontier.is_none_or(|f| end + lateness <= f)
        };
        let mut keys = BTreeSet::new();
        for row in &batch.rows {
            let end = row.window_start + window;
            let status = if previous >= end {
                WindowStatus::Correction
            } else if batch.frontier.is_none_or(|f| f >= end) {
                WindowStatus::Closed
            } else {
                WindowStatus::Open
            };
            let problem = if row.window_start % window != 0 || row.window_end != end {
                Some("is not a window")
            } else if row.delta == Default::default() {
                Some("is a zero row")
            } else if !keys.insert((row.window_start, row.dims)) {
                Some("repeats a (window, dims) of its batch")
            } else if previous >= end + lateness {
                Some("changes a window that was already final")
            } else if row.status != status {
                Some("has the wrong status")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(format!("{at}: row {row:?} {problem} (expected {status:?})"));
            }
            with_rows.insert(row.window_start);
        }
        for &start in &batch.finalized {
            if start % window != 0 || !became_final(start + window) {
                return Err(format!("{at} announces window {start} final out of turn"));
            }
            if finalized_in.insert(start, batch.seq).is_some() {
                return Err(format!("{at} announces window {start} final again"));
            }
        }
        support::add_rows(&mut sums, &case.settings, aggregate, &batch.rows);
        let expected = mine(oracle.expected_prefix(batch.frontier));
        if sums != expected {
            return Err(format!(
                "{at}: running sums differ from the oracle\n{}",
                diff(&sums, &expected)
            ));
        }
        match batch.frontier {
            Some(frontier) => previous = frontier,
            None => complete = true,
        }
    }
    if !complete {
        return Err("no batch completed the input".into());
    }
    let finals = mine(oracle.final_values());
    if sums != finals {
        return Err(format!("final sums differ\n{}", diff(&sums, &finals)));
    }
    if let Some(start) = with_rows.iter().find(|s| !finalized_in.contains_key(s)) {
        return Err(format!(
            "window {start} has rows but was never announced final"
        ));
    }
    Ok(())
}

/// Checks (c): the dead letters and the too-late records, as multisets.
fn check_rejects(oracle: &Oracle, batches: &[Batch]) -> Result<(), String> {
    let mut dead: Vec<_> = batches
        .iter()
        .flat_map(|b| b.dead_letters.clone())
        .collect();
    let mut expected_dead = oracle.dead_letters();
    dead.sort();
    expected_dead.sort();
    if dead != expected_dead {
        return Err(format!(
            "dead letters differ:\n dataflow {dead:?}\n oracle   {expected_dead:?}"
        ));
    }
    let mut late: Vec<_> = batches
        .iter()
        .flat_map(|b| b.too_late.iter().map(too_late_key))
        .collect();
    let mut expected_late: Vec<_> = oracle.too_late().iter().map(too_late_key).collect();
    late.sort();
    expected_late.sort();
    if late != expected_late {
        return Err(format!(
            "too-late records differ:\n dataflow {late:?}\n oracle   {expected_late:?}"
        ));
    }
    Ok(())
}

/// The entries where two sets of aggregates differ, one per line.
fn diff(actual: &Aggregates, expected: &Aggregates) -> String {
    let keys: BTreeSet<_> = actual.keys().chain(expected.keys()).collect();
    keys.into_iter()
        .filter(|k| actual.get(k) != expected.get(k))
        .map(|k| {
            format!(
                "  {k:?}: dataflow {:?}, oracle {:?}\n",
                actual.get(k),
                expected.get(k)
            )
        })
        .collect()
}
