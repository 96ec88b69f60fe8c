//! Emission: turn aggregate updates into consistent batches and hand them to the sinks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use differential_dataflow::difference::{IsZero, Semigroup};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::core::{Concat, Map, Probe};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Stream};

use crate::connectors::{AggregateRow, Batch, Sink, SinkError};
use crate::dataflow::{AggregateKey, Aggregates};
use crate::declare::{FunnelSettings, Measures};
use crate::event::{Millis, Rejected};

use super::{Progress, Stop, StopNotice, StopReason};

/// Shared state the emitter reports into.
#[derive(Clone)]
pub struct EmitContext {
    /// The process's stop handle; the emitter requests a stop when a sink fails.
    pub stop: Stop,
    /// The first sink failure.
    pub failure: Rc<RefCell<Option<SinkError>>>,
    /// The process's live counters (frontier, batches).
    pub progress: Arc<Progress>,
}

/// Everything the emitter keeps between activations.
struct Emitter {
    settings: FunnelSettings,
    /// The sinks of each aggregate.
    sinks: Vec<Vec<Box<dyn Sink>>>,
    updates: Vec<(AggregateKey, Millis, Measures)>,
    rejects: Vec<(Millis, Rejected)>,
    /// The frontier of the last batch.
    previous: Millis,
    /// Per aggregate: windows with rows that are not final yet.
    windows: Vec<BTreeSet<Millis>>,
    seq: u64,
    last_emit: Option<Instant>,
    finished: bool,
    /// Held at the frontier of the last batch written to every sink, so that the
    /// emitter's output frontier (seen by a probe on every worker of the cluster) is the
    /// *written* frontier: sources may rely on it to commit their read positions.
    written: Option<Capability<Millis>>,
    /// The least time of a stop notice received: the run is being abandoned.
    stop_at: Option<Millis>,
    /// Frontiers at which a batch must end: where sinks resume ([`Sink::resume_frontier`]).
    cuts: BTreeSet<Millis>,
}

/// What the emitter's second input carries: rejected records, and stop notices.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Notice {
    Rejected(Rejected),
    Stop(StopNotice),
}

impl Emitter {
    /// Builds the batches (one per aggregate, with the same sequence number) that move
    /// the frontier from `previous` to `frontier`.
    fn batch(&mut self, frontier: Option<Millis>) -> Vec<Batch> {
        let aggregates = std::sync::Arc::clone(&self.settings.aggregates);
        let before = |time: &Millis| frontier.is_none_or(|f| *time < f);
        let mut sums: BTreeMap<AggregateKey, Measures> = BTreeMap::new();
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
                dims,
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
    fn write(&mut self, batches: &[Batch], context: &EmitContext, worker: usize) {
        let Some(first) = batches.first() else {
            return;
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
                return;
            }
        }
        match first.frontier {
            Some(f) => {
                if let Some(capability) = self.written.as_mut() {
                    capability.downgrade(&f);
                }
            }
            None => self.written = None,
        }
    }

    /// Writes one batch ending at each resume frontier below `frontier` (all of them
    /// when `None`) that the batches have not reached yet: a sink that holds everything
    /// below a resume frontier then sees a batch boundary exactly there.
    fn cut(&mut self, frontier: Option<Millis>, context: &EmitContext, worker: usize) {
        while let Some(cut) = self.cuts.pop_first() {
            if frontier.is_some_and(|f| cut >= f) {
                self.cuts.insert(cut);
                return;
            }
            if cut > self.previous && self.has_sinks() {
                let batches = self.batch(Some(cut));
                self.write(&batches, context, worker);
            }
        }
    }

    /// Whether any aggregate has a sink.
    fn has_sinks(&self) -> bool {
        self.sinks.iter().any(|sinks| !sinks.is_empty())
    }
}

/// Builds the emitter on every worker; worker 0 of process 0 receives all aggregate
/// updates and rejected records and owns the sinks (`sinks[a]`: those of aggregate `a`).
///
/// The emitter's input frontier is reported to `processed` (for flow control), and its
/// output frontier to `written`, on every worker of the cluster: the frontier of the last
/// batch written to every sink. Every record whose time is below it has its effect in
/// the sinks.
///
/// When the frontier (the least frontier of both inputs) has advanced and at least
/// `emit_interval` has passed since the last batch — or the input is complete — it builds
/// one [`Batch`] and writes it to every sink, in order. A sink failure stops the run and
/// is reported.
///
/// A [`StopNotice`] (from `notices`, the broadcast stream of [`super::ingest`]) means the
/// run is abandoned: the emitter writes one last batch up to the frontier reached — a
/// consistent state, not a final one: no window is finalized for the end of input and the
/// sinks are not closed — and writes nothing after it.
#[allow(clippy::too_many_arguments)]
pub fn emit<'scope>(
    aggregates: Aggregates<'scope>,
    rejects: Stream<'scope, Millis, Vec<Rejected>>,
    notices: Stream<'scope, Millis, Vec<StopNotice>>,
    settings: &FunnelSettings,
    sinks: Vec<Vec<Box<dyn Sink>>>,
    context: EmitContext,
    processed: &ProbeHandle<Millis>,
    written: &ProbeHandle<Millis>,
) {
    let settings = settings.clone();
    let interval = settings.emit_interval;
    let to_first = Exchange::new(|_: &(AggregateKey, Millis, Measures)| 0u64);
    let rejects_to_first = Exchange::new(|_: &Notice| 0u64);
    let activator_scope = aggregates.inner.scope();
    let worker = activator_scope.index();
    let rejects = rejects
        .probe_with(processed)
        .map(Notice::Rejected)
        .concat(notices.map(Notice::Stop));
    aggregates
        .inner
        .probe_with(processed)
        .binary_frontier::<_, timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
            rejects,
            to_first,
            rejects_to_first,
            "Emit",
            move |capability: Capability<Millis>, info| {
                let activator = activator_scope.activator_for(info.address);
                let written = sinks.iter().any(|s| !s.is_empty()).then_some(capability);
                let cuts = sinks
                    .iter()
                    .flatten()
                    .filter_map(|s| s.resume_frontier())
                    .collect();
                let windows = vec![BTreeSet::new(); settings.aggregates.len()];
                let mut state = Emitter {
                    settings,
                    sinks,
                    updates: Vec::new(),
                    rejects: Vec::new(),
                    previous: 0,
                    windows,
                    seq: 0,
                    last_emit: None,
                    finished: false,
                    written,
                    stop_at: None,
                    cuts,
                };
                move |(updates, updates_frontier), (rejects, rejects_frontier), _output| {
                    updates.for_each(|_capability, data| state.updates.append(data));
                    rejects.for_each(|capability, data| {
                        let time = capability.least().copied().unwrap_or_default();
                        for notice in data.drain(..) {
                            match notice {
                                Notice::Rejected(rejected) => state.rejects.push((time, rejected)),
                                Notice::Stop(notice) => {
                                    state.stop_at =
                                        Some(state.stop_at.map_or(time, |t| t.min(time)));
                                    context.stop.hear(notice.reason);
                                }
                            }
                        }
                    });
                    if state.finished {
                        return;
                    }
                    let frontier = [updates_frontier.frontier(), rejects_frontier.frontier()]
                        .iter()
                        .flat_map(|f| f.iter().copied())
                        .min();
                    if let Some(stop_at) = state.stop_at {
                        // Abandoned: everything below the frontier reached (which the
                        // notice holds at or below its time) is complete, so one last
                        // consistent batch up to it; then nothing more.
                        let reached = frontier.map_or(stop_at, |f| f.min(stop_at));
                        state.finished = true;
                        state.cut(Some(reached), &context, worker);
                        if reached > state.previous && state.has_sinks() {
                            let batches = state.batch(Some(reached));
                            state.write(&batches, &context, worker);
                        }
                        state.written = None;
                        return;
                    }
                    if frontier.is_some_and(|f| f <= state.previous) {
                        return;
                    }
                    if let (Some(_), Some(last)) = (frontier, state.last_emit) {
                        let since = last.elapsed();
                        if since < interval {
                            activator.activate_after(interval - since);
                            return;
                        }
                    }
                    state.cut(frontier, &context, worker);
                    if state.finished {
                        return;
                    }
                    let batches = state.batch(frontier);
                    state.last_emit = Some(Instant::now());
                    state.finished = frontier.is_none();
                    if state.has_sinks() {
                        state.write(&batches, &context, worker);
                    }
                }
            },
        )
        .probe_with(written);
}
