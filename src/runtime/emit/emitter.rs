//! The emitter's state: updates not yet emitted, batches cut from them, sinks written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use differential_dataflow::difference::{IsZero, Semigroup};
use timely::dataflow::operators::Capability;

use super::EmitContext;
use crate::connectors::{AggregateRow, Batch, Sink};
use crate::dataflow::AggregateKey;
use crate::declare::{FunnelSettings, Measures};
use crate::event::{Millis, Rejected};
use crate::runtime::StopReason;

/// Where a run's emission starts: at the frontier of a restored checkpoint, with its
/// batch sequence and each aggregate's open windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmitStart {
    /// The frontier the sinks hold everything below; updates at earlier times are the
    /// effects of the restored state and are not emitted again.
    pub frontier: Millis,
    /// The sequence number of the next batch.
    pub next_seq: u64,
    /// Per aggregate (in declaration order), the starts of its windows with rows that
    /// are not final yet.
    pub windows: Vec<Vec<Millis>>,
    /// The accounting of the runs before this one, carried into its checkpoints.
    pub accounting: crate::runtime::Accounting,
    /// The records the runs before this one read but had not applied at `frontier`
    /// (sent again by the restore operator), carried into its checkpoints.
    pub events: Vec<(crate::event::Record, Millis)>,
    /// Likewise, the records they rejected at `frontier` or later.
    pub rejects: Vec<(Millis, Rejected)>,
}

/// Everything the emitter keeps between activations (updates with dims in keys of `N`
/// bytes).
pub(super) struct Emitter<const N: usize> {
    pub(super) settings: FunnelSettings,
    /// The sinks of each aggregate (`sinks[a]`: those of aggregate `a`).
    pub(super) sinks: Vec<Vec<Box<dyn Sink>>>,
    pub(super) updates: Vec<(AggregateKey<N>, Millis, Measures)>,
    pub(super) rejects: Vec<(Millis, Rejected)>,
    /// Updates and rejects at earlier times are already in the sinks (a restored run).
    pub(super) floor: Millis,
    /// The frontier of the last batch.
    pub(super) previous: Millis,
    /// Per aggregate: windows with rows that are not final yet.
    pub(super) windows: Vec<BTreeSet<Millis>>,
    pub(super) seq: u64,
    pub(super) finished: bool,
    /// Held at the frontier up to which every sink is safe: the frontier of the last
    /// batch written to every sink, or, in a run with checkpoints, of the last durable
    /// checkpoint. The emitter's output frontier (seen by a probe on every worker of the
    /// cluster) is this frontier: sources may rely on it to commit read positions.
    pub(super) written: Option<Capability<Millis>>,
    /// The least time of a stop notice received: the run is being abandoned.
    pub(super) stop_at: Option<Millis>,
    /// Frontiers at which a batch must end, because a sink resumes there
    /// ([`Sink::resume`]), with the sequence number that batch had.
    pub(super) resume: BTreeMap<Millis, u64>,
}

impl<const N: usize> Emitter<N> {
    pub(super) fn new(
        settings: FunnelSettings,
        sinks: Vec<Vec<Box<dyn Sink>>>,
        start: Option<EmitStart>,
        written: Option<Capability<Millis>>,
    ) -> Emitter<N> {
        let start = start.unwrap_or_default();
        let mut resume = BTreeMap::new();
        for sink in sinks.iter().flatten() {
            if let Some(r) = sink.resume().filter(|r| r.frontier > start.frontier) {
                resume.insert(r.frontier, r.seq);
            }
        }
        let windows = (0..settings.aggregates.len())
            .map(|a| {
                let restored = start.windows.get(a).cloned().unwrap_or_default();
                restored.into_iter().collect()
            })
            .collect();
        Emitter {
            settings,
            sinks,
            updates: Vec::new(),
            rejects: Vec::new(),
            floor: start.frontier,
            previous: start.frontier,
            windows,
            seq: start.next_seq,
            finished: false,
            written,
            stop_at: None,
            resume,
        }
    }

    /// True while the frontier has not reached the frontier of every sink that resumes:
    /// until then batches end only where a sink resumes.
    pub(super) fn catching_up(&self, frontier: Option<Millis>) -> bool {
        self.resume
            .last_key_value()
            .is_some_and(|(last, _)| frontier.is_some_and(|f| f < *last))
    }

    /// Builds the batches (one per aggregate, with the same sequence number) that move
    /// the frontier from `previous` to `frontier`.
    pub(super) fn batch(&mut self, frontier: Option<Millis>) -> Vec<Batch> {
        let aggregates = std::sync::Arc::clone(&self.settings.aggregates);
        let before = |time: &Millis| frontier.is_none_or(|f| *time < f);
        let mut sums: BTreeMap<AggregateKey<N>, Measures> = BTreeMap::new();
        self.updates.retain(|(key, time, delta)| {
            if !before(time) {
                return true;
            }
            // Changes at or after the window is final are releases of state or parents
            // too late for this window: the final value stands.
            let window = aggregates[usize::from(key.0)].window;
            if *time < window.final_at(key.1) {
                sums.entry(*key).or_default().plus_equals(delta);
            }
            false
        });
        let resumed = frontier.and_then(|f| self.resume.remove(&f));
        if let Some(seq) = resumed {
            // The batch a resuming sink holds ends here: it keeps its number.
            self.seq = self.seq.max(seq);
            // That sink holds the batches of the run before, which may show rows of a
            // window whose changes cancel out over this one longer batch: every window
            // changed here is still to be announced final.
            for (aggregate, window_start, _) in sums.keys() {
                self.windows[usize::from(*aggregate)].insert(*window_start);
            }
        }
        let mut batches: Vec<Batch> = aggregates
            .iter()
            .map(|_| Batch {
                seq: self.seq,
                previous: self.previous,
                frontier,
                ..Batch::default()
            })
            .collect();
        for ((aggregate, window_start, dims), delta) in sums {
            if delta.is_zero() {
                continue;
            }
            let window = aggregates[usize::from(aggregate)].window;
            let window_end = window.end(window_start);
            batches[usize::from(aggregate)].rows.push(AggregateRow {
                window_start,
                window_end,
                dims: dims.widen(),
                delta,
                status: window.status(window_end, self.previous, frontier),
            });
        }
        let mut dead_letters = Vec::new();
        let mut too_late = Vec::new();
        self.rejects.retain(|(time, rejected)| {
            if !before(time) {
                return true;
            }
            match rejected.clone() {
                Rejected::DeadLetter(dead) => dead_letters.push(dead),
                Rejected::TooLate(late) => too_late.push(late),
            }
            false
        });
        for (a, batch) in batches.iter_mut().enumerate() {
            let windows = &mut self.windows[a];
            windows.extend(batch.rows.iter().map(|row| row.window_start));
            batch.finalized = match frontier {
                None => std::mem::take(windows).into_iter().collect(),
                Some(f) => {
                    let open = windows.split_off(&aggregates[a].window.first_not_final(f));
                    std::mem::replace(windows, open).into_iter().collect()
                }
            };
            batch.dead_letters = dead_letters.clone();
            batch.too_late = too_late.clone();
        }
        self.seq += 1;
        if let Some(f) = frontier {
            self.previous = f;
        }
        batches
    }

    /// Writes each aggregate's batch to its sinks (and closes them after the last batch
    /// of a complete input). On a failure the run is stopped and nothing more is written.
    /// Returns whether every sink took its batch.
    pub(super) fn write(
        &mut self,
        batches: &[Batch],
        context: &EmitContext,
        worker: usize,
    ) -> bool {
        let Some(first) = batches.first() else {
            return true;
        };
        let progress = &context.progress;
        progress.batches.fetch_add(1, Ordering::Relaxed);
        progress
            .frontier
            .store(first.frontier.unwrap_or(u64::MAX), Ordering::Relaxed);
        let close = first.frontier.is_none();
        let sinks = self
            .sinks
            .iter_mut()
            .zip(batches)
            .flat_map(|(sinks, batch)| sinks.iter_mut().map(move |sink| (sink, batch)));
        for (sink, batch) in sinks {
            progress.writing.store(true, Ordering::SeqCst);
            let written =
                sink.write_batch(batch)
                    .and_then(|()| if close { sink.close() } else { Ok(()) });
            progress.writing.store(false, Ordering::SeqCst);
            if let Err(error) = written {
                context.stop.request(StopReason::Failure {
                    worker,
                    message: error.to_string(),
                });
                context.failure.borrow_mut().get_or_insert(error);
                self.finished = true;
                self.sinks.clear();
                self.written = None;
                return false;
            }
        }
        true
    }

    /// Whether any aggregate has a sink.
    pub(super) fn has_sinks(&self) -> bool {
        self.sinks.iter().any(|sinks| !sinks.is_empty())
    }

    /// Builds the batch up to `frontier` when it moves the frontier (or ends the input)
    /// and writes it to the sinks; returns whether every sink took it (or there was
    /// nothing to write).
    pub(super) fn emit(
        &mut self,
        frontier: Option<Millis>,
        context: &EmitContext,
        worker: usize,
    ) -> bool {
        if frontier.is_some_and(|f| f <= self.previous) {
            return true;
        }
        let batches = self.batch(frontier);
        !self.has_sinks() || self.write(&batches, context, worker)
    }

    /// Writes one batch ending at each resume frontier below `frontier` (all of them
    /// when `None`) that the batches have not reached yet: a sink that holds everything
    /// below a resume frontier then sees a batch boundary exactly there.
    pub(super) fn cut_resumes(
        &mut self,
        frontier: Option<Millis>,
        context: &EmitContext,
        worker: usize,
    ) {
        while let Some((&cut, _)) = self.resume.first_key_value() {
            if frontier.is_some_and(|f| cut > f) || self.finished {
                return;
            }
            if cut <= self.previous || !self.emit(Some(cut), context, worker) {
                self.resume.remove(&cut);
            }
        }
    }
}
