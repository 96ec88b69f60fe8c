//! Ingestion: read a worker's partitions in step by event time, judge lateness, and emit
//! events (as a differential collection) and rejected records, with the frontier.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use super::guard::Guards;
use super::{Accounting, Admission, PartitionClock, Progress, Stop, StopNotice, StopReason};
use crate::connectors::{Arrival, Partition, Poll};
use crate::declare::FunnelSettings;
use crate::event::{DeadLetter, Invalid, Millis, Origin, Record, Rejected, TooLate};
use crate::format::csv_line;

/// Records read from one partition per poll.
const POLL_CHUNK: usize = 4096;
/// Longest time one activation of the ingest operator keeps reading.
const SLICE: Duration = Duration::from_millis(5);
/// How soon an operator held back by flow control looks again.
const LEAD_RETRY: Duration = Duration::from_micros(200);
/// How soon an operator whose partitions are all idle looks again.
const IDLE_RETRY: Duration = Duration::from_millis(1);

/// Shared state the ingest operator reports into.
#[derive(Clone)]
pub struct IngestContext {
    /// The process's live counters.
    pub progress: Arc<Progress>,
    /// The process's stop handle: a stop requested here is announced to the cluster, and
    /// a stop requested or heard ends reading.
    pub stop: Stop,
    /// The first transport failure of this worker's partitions.
    pub failure: Rc<RefCell<Option<std::io::Error>>>,
    /// The frontier of the whole dataflow (at the emitter's inputs), for flow control.
    pub output_frontier: ProbeHandle<Millis>,
    /// The frontier of the last batch written to every sink (the emitter's output):
    /// every record with a time below it has its effect in the sinks. Sources that
    /// commit read positions (Kafka offsets) commit up to it.
    pub written_frontier: ProbeHandle<Millis>,
}

/// Flow control: a partition whose watermark is more than this far (event time) ahead of
/// the dataflow's output frontier is not read until the frontier catches up, so a fast
/// partition cannot fill the state with records the frontier has not reached.
pub const MAX_LEAD: Millis = 60_000;

struct PartitionState {
    partition: Box<dyn Partition>,
    clock: PartitionClock,
    guards: Guards,
    done: bool,
    /// Said `Idle` in this activation: not asked again until the next one, so an idle
    /// partition never keeps the others from being read.
    idle: bool,
    /// Since when the partition has had nothing to give when asked (for its
    /// `idle_timeout`); `None` while it delivers. A partition that is not asked (flow
    /// control) does not become idle.
    quiet_since: Option<Instant>,
    /// Idle past its `idle_timeout`: it does not hold the frontier back, its watermark
    /// follows the others' (design.md §3), until it delivers a record again.
    released: bool,
}

/// The streams that ingestion produces.
pub struct Ingested<'scope> {
    /// Admitted records, each `(record, entry time, +1)`.
    pub records: VecCollection<'scope, Millis, Record>,
    /// Dead letters and too-late records, at the time they were rejected.
    pub rejects: Stream<'scope, Millis, Vec<Rejected>>,
    /// Stop notices announced by this worker (see [`super::hear_stops`]).
    pub notices: Stream<'scope, Millis, Vec<StopNotice>>,
}

/// Builds the ingest operator over this worker's `partitions`.
///
/// The operator holds a capability at the worker's frontier: the least watermark over its
/// open partitions (design.md §3). It always reads from the open partition whose watermark
/// is lowest, so the frontier advances during a replay. Each valid record is admitted by
/// its partition's [`PartitionClock`], then checked against the bounds of bounded
/// dimensions and the overflow budget of summed fields; entering records become
/// `(record, entry, +1)` updates; dead letters and too-late records go to the second stream. When every
/// partition is done the capability is dropped, completing every window downstream.
///
/// When the process's [`Stop`] is stopping (requested here or heard from the cluster),
/// the operator announces a [`StopNotice`] on the third stream, at its frontier, and
/// stops reading. Broadcast that stream to every worker (see [`super::hear_stops`]) and
/// give it to the emitter, which then knows the end of input is an abandonment.
pub fn ingest<'scope>(
    scope: Scope<'scope, Millis>,
    settings: &FunnelSettings,
    partitions: Vec<Box<dyn Partition>>,
    context: IngestContext,
) -> Ingested<'scope> {
    let worker = scope.index();
    let settings = settings.clone();
    let lateness = settings.lateness;
    let mut states: Vec<PartitionState> = partitions
        .into_iter()
        .map(|partition| PartitionState {
            partition,
            clock: PartitionClock::with_future_skew(
                settings.max_disorder,
                settings.max_future_skew,
            ),
            guards: Guards::new(&settings),
            done: false,
            idle: false,
            quiet_since: None,
            released: false,
        })
        .collect();

    let mut builder = OperatorBuilder::new("Ingest".to_owned(), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(info.address);
    let (events_output, events) = builder.new_output();
    let (rejects_output, rejects) = builder.new_output();
    let (notices_output, notices) = builder.new_output();
    let mut events_output = OutputBuilder::from(events_output);
    let mut rejects_output = OutputBuilder::from(rejects_output);
    let mut notices_output =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<StopNotice>>>::from(notices_output);

    builder.build(move |capabilities| {
        let mut capabilities = Some(capabilities);
        let mut arrivals = Vec::with_capacity(POLL_CHUNK);
        move |_frontiers| {
            let Some(caps) = capabilities.as_mut() else {
                return;
            };
            let started = Instant::now();
            let mut all_idle = true;
            let mut waiting = false;
            let mut events_handle = events_output.activate();
            let mut rejects_handle = rejects_output.activate();
            let mut events_session = events_handle.session(&caps[0]);
            let mut rejects_session = rejects_handle.session(&caps[1]);
            let mut accounting = Accounting::default();
            while started.elapsed() < SLICE && !context.stop.is_stopping() {
                // The open partition with the lowest watermark, so the frontier moves.
                let Some(state) = states
                    .iter_mut()
                    .filter(|s| !s.done && !s.idle)
                    .min_by_key(|s| s.clock.watermark())
                else {
                    break;
                };
                let output = context
                    .output_frontier
                    .with_frontier(|f| f.iter().next().copied());
                if output.is_some_and(|f| state.clock.watermark() > f.saturating_add(MAX_LEAD)) {
                    waiting = true;
                    break;
                }
                arrivals.clear();
                let poll = match state.partition.poll(&mut arrivals, POLL_CHUNK) {
                    Ok(poll) => poll,
                    Err(error) => {
                        context.stop.request(StopReason::Failure {
                            worker,
                            message: format!("{}: {error}", state.partition.name()),
                        });
                        context.failure.borrow_mut().get_or_insert(error);
                        break;
                    }
                };
                if arrivals.is_empty() {
                    state.quiet_since.get_or_insert_with(Instant::now);
                } else {
                    state.quiet_since = None;
                    state.released = false;
                }
                for arrival in arrivals.drain(..) {
                    match arrival {
                        Arrival::DeadLetter(dead) => {
                            let counts = accounting.stream_mut(dead.stream);
                            counts.read += 1;
                            counts.dead_lettered += 1;
                            rejects_session.give(Rejected::DeadLetter(dead));
                        }
                        Arrival::Event {
                            mut record,
                            position,
                        } => {
                            let counts = accounting.stream_mut(record.stream);
                            counts.read += 1;
                            let name = state.partition.name();
                            match state.clock.judge(&lateness, record.stream, record.ts) {
                                Admission::Enter {
                                    entry,
                                    late,
                                    attribution_only,
                                } => {
                                    let checked =
                                        state.guards.admit(&settings, &mut record, !attribution_only);
                                    if let Err(reason) = checked {
                                        counts.dead_lettered += 1;
                                        rejects_session.give(Rejected::DeadLetter(dead_letter(
                                            &settings, &record, name, position, reason,
                                        )));
                                        continue;
                                    }
                                    state.clock.advance(record.ts);
                                    counts.late += u64::from(late);
                                    counts.attribution_only += u64::from(attribution_only);
                                    events_session.give((record, entry, 1isize));
                                }
                                Admission::TooFarInFuture { ahead_ms } => {
                                    counts.dead_lettered += 1;
                                    let schema = settings.schema.stream(record.stream);
                                    let reason = Invalid::TooFarInFuture {
                                        field: schema.fields()[schema.time_index()].name.clone(),
                                        ts: record.ts,
                                        ahead_ms,
                                    };
                                    rejects_session.give(Rejected::DeadLetter(dead_letter(
                                        &settings, &record, name, position, reason,
                                    )));
                                }
                                Admission::TooLate { watermark } => {
                                    counts.too_late += 1;
                                    rejects_session.give(Rejected::TooLate(too_late(
                                        &record, name, position, watermark,
                                    )));
                                }
                            }
                        }
                    }
                }
                match poll {
                    Poll::Ready => all_idle = false,
                    Poll::Done => {
                        state.done = true;
                        all_idle = false;
                    }
                    Poll::Idle => state.idle = true,
                }
            }
            drop(events_session);
            drop(rejects_session);
            for state in states.iter_mut() {
                state.idle = false;
                state.guards.forget(state.clock.watermark());
            }
            context.progress.add_ingest(&accounting);
            let frontier = release_idle(&mut states, caps[0].time());
            if let Some(written) = context
                .written_frontier
                .with_frontier(|f| f.iter().next().copied())
            {
                for state in states.iter_mut() {
                    state.partition.written_through(Some(written));
                }
            }
            if context.stop.is_stopping() {
                // Announce at the frontier, then stop: the notice holds the frontier
                // until every worker (and the emitter) has received it.
                if let Some(reason) = context.stop.reason() {
                    let mut notices_handle = notices_output.activate();
                    notices_handle.session(&caps[2]).give(StopNotice { reason });
                }
                capabilities = None;
                return;
            }
            match frontier {
                Some(time) => {
                    for cap in caps.iter_mut() {
                        if *cap.time() < time {
                            cap.downgrade(&time);
                        }
                    }
                    if waiting {
                        activator.activate_after(LEAD_RETRY);
                    } else if all_idle {
                        activator.activate_after(IDLE_RETRY);
                    } else {
                        activator.activate();
                    }
                }
                _ => capabilities = None,
            }
        }
    });

    Ingested {
        records: events.as_collection(),
        rejects,
        notices,
    }
}

/// Releases the partitions idle past their `idle_timeout` and returns the worker's
/// frontier: the least watermark over the open partitions that are not released, and
/// the released ones' watermarks caught up to it. When every open partition is released,
/// the frontier follows the wall clock, `now − max_disorder − idle_timeout` (a live
/// source's event time is about the wall clock), never going back. `None` when every
/// partition is done.
fn release_idle(states: &mut [PartitionState], current: &Millis) -> Option<Millis> {
    // The least watermark of the open partitions that are not released.
    let mut held = None::<Millis>;
    for state in states.iter_mut().filter(|s| !s.done) {
        if let Some(timeout) = state.partition.idle_timeout() {
            if state
                .quiet_since
                .is_some_and(|since| since.elapsed() >= timeout)
            {
                state.released = true;
            }
        }
        if !state.released {
            let watermark = state.clock.watermark();
            held = Some(held.map_or(watermark, |h| h.min(watermark)));
        }
    }
    if states.iter().all(|s| s.done) {
        return None;
    }
    let frontier = if let Some(held) = held {
        held
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        let lag = states
            .iter()
            .filter(|s| !s.done)
            .filter_map(|s| {
                s.partition
                    .idle_timeout()
                    .map(|t| t.as_millis() as Millis + s.clock.watermark_lag())
            })
            .max()
            .unwrap_or(0);
        let lowest = states
            .iter()
            .filter(|s| !s.done)
            .map(|s| s.clock.watermark())
            .min()
            .unwrap_or(*current);
        lowest.max(now.saturating_sub(lag)).max(*current)
    };
    for state in states.iter_mut().filter(|s| !s.done && s.released) {
        if state.clock.watermark() < frontier {
            state.clock.catch_up(frontier);
            state.partition.caught_up(frontier);
        }
    }
    Some(frontier)
}

/// A record admitted by the watermark but rejected as bad input: too far in the future,
/// beyond a dimension's bound, or beyond the overflow budget.
fn dead_letter(
    settings: &FunnelSettings,
    record: &Record,
    source: &str,
    position: u64,
    reason: Invalid,
) -> DeadLetter {
    DeadLetter {
        stream: record.stream,
        origin: Origin {
            source: source.to_owned(),
            position,
        },
        raw: csv_line(settings.schema.stream(record.stream), record),
        reason: reason.to_string(),
    }
}

fn too_late(record: &Record, source: &str, position: u64, watermark: Millis) -> TooLate {
    TooLate {
        stream: record.stream,
        origin: Origin {
            source: source.to_owned(),
            position,
        },
        id: record.id,
        ts: record.ts,
        watermark,
        reason: format!(
            "too late: the partition watermark {watermark} had reached the record's release \
             time, so every window it could affect (from the window of ts {}) is final",
            record.ts
        ),
    }
}
