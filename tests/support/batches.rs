//! Checks of a run's batches against the oracle (docs/semantics.md §6): running sums,
//! statuses, finalization, rejects, per aggregate.

use std::collections::{BTreeMap, BTreeSet};

use diffmill::connectors::Batch;
use diffmill::declare::{FunnelSettings, WindowStatus};
use diffmill::event::Millis;

use super::oracle::{too_late_key, Aggregates, Oracle};

/// Checks (a), (b), (e) and (f) for aggregate `aggregate`: running sums, row statuses and
/// shape, finalization.
pub fn check_batches(
    settings: &FunnelSettings,
    oracle: &Oracle,
    aggregate: usize,
    batches: &[Batch],
) -> Result<(), String> {
    let window = settings.aggregates[aggregate].window.length;
    let lateness = settings.aggregates[aggregate].window.allowed_lateness;
    let mine = |all: Aggregates| -> Aggregates {
        all.into_iter()
            .filter(|((a, _, _), _)| *a == aggregate)
            .collect()
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
        if batch
            .frontier
            .is_some_and(|f| f % settings.tick.step() != 0)
        {
            return Err(format!(
                "{at}: the frontier is not a multiple of the tick ({} ms)",
                settings.tick.step()
            ));
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
        super::add_rows(&mut sums, settings, aggregate, &batch.rows);
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
pub fn check_rejects(oracle: &Oracle, batches: &[Batch]) -> Result<(), String> {
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
pub fn diff(actual: &Aggregates, expected: &Aggregates) -> String {
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
