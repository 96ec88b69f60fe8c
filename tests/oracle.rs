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

use diffmill::connectors::{MemorySink, MemorySource, Source};
use diffmill::runtime::Funnel;
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
        check_batches(&case.settings, oracle, a, &batches)
            .map_err(|e| format!("aggregate {a}: {e}"))?;
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
