//! Emission: turn aggregate updates into consistent batches and hand them to the sinks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use differential_dataflow::difference::{IsZero, Semigroup};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::core::Probe;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Stream};

use crate::connectors::{AggregateRow, Batch, Sink, SinkError};
use crate::dataflow::{AggregateKey, Aggregates, FunnelSettings, Measures};
use crate::event::{Millis, Rejected};

use super::Progress;

/// Shared state the emitter reports into.
#[derive(Clone)]
pub struct EmitContext {
    /// Set when the run must stop; the emitter sets it when a sink fails.
    pub abort: Arc<AtomicBool>,
    /// The first sink failure.
    pub failure: Rc<RefCell<Option<SinkError>>>,
    /// The process's live counters (frontier, batches).
    pub progress: Arc<Progress>,
}

/// Everything the emitter keeps between activations.
struct Emitter {
    settings: FunnelSettings,
    sinks: Vec<Box<dyn Sink>>,
    updates: Vec<(AggregateKey, Millis, Measures)>,
    rejects: Vec<(Millis, Rejected)>,
    /// The frontier of the last batch.
    previous: Millis,
    /// Windows with rows that are not final yet.
    windows: BTreeSet<Millis>,
    seq: u64,
    last_emit: Option<Instant>,
    finished: bool,
    /// Held at the frontier of the last batch written to every sink, so that the
    /// emitter's output frontier (seen by a probe on every worker of the cluster) is the
    /// *written* frontier: sources may rely on it to commit their read positions.
    written: Option<Capability<Millis>>,
}

impl Emitter {
    /// Builds the batch that moves the frontier from `previous` to `frontier`.
    fn batch(&mut self, frontier: Option<Millis>) -> Batch {
        let lateness = self.settings.lateness;
        let before = |time: &Millis| frontier.is_none_or(|f| *time < f);
        let mut sums: BTreeMap<AggregateKey, Measures> = BTreeMap::new();
        self.updates.retain(|(key, time, delta)| {
            if !before(time) {
                return true;
            }
            // Changes at or after the window is final are releases of state or parents
            // too late for this window: the final value stands.
            if *time < lateness.final_at(key.0) {
                sums.entry(*key).or_default().plus_equals(delta);
            }
            false
        });
        let rows: Vec<AggregateRow> = sums
            .into_iter()
            .filter(|(_, delta)| !delta.is_zero())
            .map(|((window_start, dims), delta)| {
                let window_end = lateness.window_end(window_start);
                AggregateRow {
                    window_start,
                    window_end,
                    dims,
                    delta,
                    status: lateness.status(window_end, self.previous, frontier),
                }
            })
            .collect();
        self.windows.extend(rows.iter().map(|row| row.window_start));
        let finalized: Vec<Millis> = match frontier {
            None => std::mem::take(&mut self.windows).into_iter().collect(),
            Some(f) => {
                let open = self.windows.split_off(&self.first_not_final(f));
                std::mem::replace(&mut self.windows, open)
                    .into_iter()
                    .collect()
            }
        };
        let mut batch = Batch {
            seq: self.seq,
            previous: self.previous,
            frontier,
            rows,
            finalized,
            ..Batch::default()
        };
        self.rejects.retain(|(time, rejected)| {
            if !before(time) {
                return true;
            }
            match rejected.clone() {
                Rejected::DeadLetter(dead) => batch.dead_letters.push(dead),
                Rejected::TooLate(late) => batch.too_late.push(late),
            }
            false
        });
        self.seq += 1;
        if let Some(f) = frontier {
            self.previous = f;
        }
        batch
    }

    /// The least window start whose window is not final at frontier `f`.
    fn first_not_final(&self, f: Millis) -> Millis {
        let lateness = self.settings.lateness;
        // final_at(s) = s + W + L <= f  <=>  s <= f - W - L
        let span = lateness.window.saturating_add(lateness.allowed_lateness);
        match f.checked_sub(span) {
            Some(last_final) => lateness
                .window_start(last_final)
                .saturating_add(lateness.window),
            None => 0,
        }
    }
}

/// Builds the emitter on every worker; worker 0 of process 0 receives all aggregate
/// updates and rejected records and owns the sinks.
///
/// The emitter's input frontier is reported to `processed` (for flow control), and its
/// output frontier to `written`, on every worker of the cluster: the frontier of the last
/// batch written to every sink. Every record whose time is below it has its effect in
/// the sinks.
///
/// When the frontier (the least frontier of both inputs) has advanced and at least
/// `emit_interval` has passed since the last batch — or the input is complete — it builds
/// one [`Batch`] and writes it to every sink, in order. A sink failure stops the run
/// (`abort`) and is reported.
pub fn emit<'scope>(
    aggregates: Aggregates<'scope>,
    rejects: Stream<'scope, Millis, Vec<Rejected>>,
    settings: &FunnelSettings,
    sinks: Vec<Box<dyn Sink>>,
    context: EmitContext,
    processed: &ProbeHandle<Millis>,
    written: &ProbeHandle<Millis>,
) {
    let settings = settings.clone();
    let interval = settings.emit_interval;
    let to_first = Exchange::new(|_: &(AggregateKey, Millis, Measures)| 0u64);
    let rejects_to_first = Exchange::new(|_: &Rejected| 0u64);
    let activator_scope = aggregates.inner.scope();
    let rejects = rejects.probe_with(processed);
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
                let written = (!sinks.is_empty()).then_some(capability);
                let mut state = Emitter {
                    settings,
                    sinks,
                    updates: Vec::new(),
                    rejects: Vec::new(),
                    previous: 0,
                    windows: BTreeSet::new(),
                    seq: 0,
                    last_emit: None,
                    finished: false,
                    written,
                };
                move |(updates, updates_frontier), (rejects, rejects_frontier), _output| {
                    updates.for_each(|_capability, data| state.updates.append(data));
                    rejects.for_each(|capability, data| {
                        let time = capability.least().copied().unwrap_or_default();
                        state.rejects.extend(data.drain(..).map(|r| (time, r)));
                    });
                    if state.finished {
                        return;
                    }
                    let frontier = [updates_frontier.frontier(), rejects_frontier.frontier()]
                        .iter()
                        .flat_map(|f| f.iter().copied())
                        .min();
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
                    let batch = state.batch(frontier);
                    state.last_emit = Some(Instant::now());
                    state.finished = frontier.is_none();
                    if state.sinks.is_empty() {
                        return;
                    }
                    let progress = &context.progress;
                    progress.batches.fetch_add(1, Ordering::Relaxed);
                    progress
                        .frontier
                        .store(frontier.unwrap_or(u64::MAX), Ordering::Relaxed);
                    for sink in state.sinks.iter_mut() {
                        let written = sink.write_batch(&batch).and_then(|()| {
                            if state.finished {
                                sink.close()
                            } else {
                                Ok(())
                            }
                        });
                        if let Err(error) = written {
                            context.failure.borrow_mut().get_or_insert(error);
                            context.abort.store(true, Ordering::Relaxed);
                            state.finished = true;
                            state.sinks.clear();
                            state.written = None;
                            return;
                        }
                    }
                    match frontier {
                        Some(f) => {
                            if let Some(capability) = state.written.as_mut() {
                                capability.downgrade(&f);
                            }
                        }
                        None => state.written = None,
                    }
                }
            },
        )
        .probe_with(written);
}
