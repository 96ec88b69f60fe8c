//! Reading a worker's partitions in step by event time: admission, flow control, idle
//! release.

use std::time::{Duration, Instant};

use crate::connectors::{Arrival, Partition, Poll};
use crate::declare::{FunnelSettings, Tick};
use crate::event::{time_text, DeadLetter, Invalid, Millis, Origin, Record, Rejected, TooLate};
use crate::format::csv_line;
use crate::observe::{Observer, PartitionMeter};
use crate::runtime::checkpoint::PartitionState;
use crate::runtime::{Accounting, Admission, Guards, PartitionClock};

/// Records read from one partition per poll.
pub(super) const POLL_CHUNK: usize = 4096;
/// Longest time one activation of the ingest operator keeps reading.
const SLICE: Duration = Duration::from_millis(5);

/// Flow control: a partition whose watermark is more than this far (event time) ahead of
/// the dataflow's output frontier is not read until the frontier catches up, so a fast
/// partition cannot fill the state with records the frontier has not reached.
pub const MAX_LEAD: Millis = 60_000;

/// One partition being read.
pub(super) struct Reading {
    pub(super) partition: Box<dyn Partition>,
    pub(super) clock: PartitionClock,
    /// The bounds on distinct dimension values and the overflow budgets, in the
    /// partition's order.
    guards: Guards,
    pub(super) done: bool,
    /// Said `Idle` in this activation: not asked again until the next one, so an idle
    /// partition never keeps the others from being read.
    idle: bool,
    /// Since when the partition has had nothing to give when asked (for its
    /// `idle_timeout`); `None` while it delivers. A partition that is not asked (flow
    /// control) does not become idle.
    quiet_since: Option<Instant>,
    /// Idle past its `idle_timeout`: it does not hold the frontier back, its watermark
    /// follows the others' (docs/design.md §3), until it delivers a record again.
    released: bool,
    /// Reports the partition's counts and watermark to the observer after each poll.
    meter: PartitionMeter,
}

impl Reading {
    pub(super) fn new(
        partition: Box<dyn Partition>,
        settings: &FunnelSettings,
        observer: &Observer,
    ) -> Reading {
        Reading {
            meter: observer.partition_meter(partition.name()),
            partition,
            clock: PartitionClock::with_future_skew(
                settings.max_disorder,
                settings.max_future_skew,
            ),
            guards: Guards::new(settings),
            done: false,
            idle: false,
            quiet_since: None,
            released: false,
        }
    }

    /// What a checkpoint keeps of the partition; `None` when it cannot be reopened.
    pub(super) fn state(&self) -> Option<PartitionState> {
        Some(PartitionState {
            name: self.partition.name().to_owned(),
            position: self.partition.position()?,
            max_seen: self.clock.max_seen(),
            guards: self.guards.state(),
            done: self.done,
        })
    }

    /// Takes back the partition's state from a checkpoint, or, for a partition the
    /// checkpoint does not know, starts its watermark at the checkpoint's frontier:
    /// its records older than that are late, as they would be for a partition that
    /// appeared while the run was going.
    pub(super) fn restore(
        &mut self,
        state: Option<&PartitionState>,
        frontier: Millis,
    ) -> Result<(), std::io::Error> {
        match state {
            Some(state) => {
                if !state.done {
                    self.partition.seek(state.position)?;
                }
                self.clock.restore(state.max_seen);
                self.guards.restore(&state.guards);
                self.done = state.done;
            }
            None => self.clock.catch_up(frontier),
        }
        Ok(())
    }
}

/// What one record read became: a record entering at a time, or a rejected record.
pub(super) enum Admitted {
    /// Enters the dataflow at the time.
    Enter(Record, Millis),
    /// Goes to the reject outputs, at its time: the partition's watermark when it was
    /// read (never below the worker's frontier), a function of the partition's own
    /// sequence, so a record read again after a restart is rejected at the same time.
    Rejected(Millis, Rejected),
}

/// How a slice of reading ended.
#[derive(Default)]
pub(super) struct Slice {
    /// Flow control held the lowest partition back.
    pub(super) waiting: bool,
    /// Every partition asked had nothing to give.
    pub(super) all_idle: bool,
    /// A partition failed: its name and the error.
    pub(super) failure: Option<(String, std::io::Error)>,
}

/// Where a slice of reading stands: the rules and the frontiers it reads by.
#[derive(Clone, Copy)]
pub(super) struct SliceBounds<'a> {
    /// The declaration and lateness settings, for admission and the guards.
    pub(super) settings: &'a FunnelSettings,
    /// The dataflow's output frontier, for flow control.
    pub(super) output_frontier: Option<Millis>,
    /// The worker's frontier: no record is rejected at an earlier time.
    pub(super) frontier: Millis,
    /// Entry times are rounded down by it.
    pub(super) tick: Tick,
}

/// Reads for one slice of time from the open partition with the lowest watermark, again
/// and again (so the frontier moves), while `keep_going` holds; each record read is
/// counted in `accounting` and handed to `admitted`.
pub(super) fn read_slice(
    partitions: &mut [Reading],
    bounds: &SliceBounds<'_>,
    arrivals: &mut Vec<Arrival>,
    accounting: &mut Accounting,
    keep_going: impl Fn() -> bool,
    mut admitted: impl FnMut(Admitted),
) -> Slice {
    let output_frontier = bounds.output_frontier;
    let started = Instant::now();
    let mut slice = Slice {
        all_idle: true,
        ..Slice::default()
    };
    while started.elapsed() < SLICE && keep_going() {
        let Some(reading) = partitions
            .iter_mut()
            .filter(|r| !r.done && !r.idle)
            .min_by_key(|r| r.clock.watermark())
        else {
            break;
        };
        if output_frontier.is_some_and(|f| reading.clock.watermark() > f.saturating_add(MAX_LEAD)) {
            slice.waiting = true;
            break;
        }
        arrivals.clear();
        let poll = match reading.partition.poll(arrivals, POLL_CHUNK) {
            Ok(poll) => poll,
            Err(error) => {
                slice.failure = Some((reading.partition.name().to_owned(), error));
                break;
            }
        };
        if arrivals.is_empty() {
            reading.quiet_since.get_or_insert_with(Instant::now);
        } else {
            reading.quiet_since = None;
            reading.released = false;
        }
        let counted = *accounting;
        for arrival in arrivals.drain(..) {
            admitted(admit(reading, bounds, accounting, arrival));
        }
        let (watermark, done) = (reading.clock.watermark(), poll == Poll::Done);
        let partition = reading.partition.as_ref();
        reading
            .meter
            .record(&counted, accounting, watermark, partition, done);
        match poll {
            Poll::Ready => slice.all_idle = false,
            Poll::Done => {
                reading.done = true;
                slice.all_idle = false;
            }
            Poll::Idle => reading.idle = true,
        }
    }
    for reading in partitions.iter_mut() {
        reading.idle = false;
        reading.guards.forget(reading.clock.watermark());
    }
    slice
}

/// Judges one record read from `reading` by its partition's clock, then by its guards
/// (bounded dimensions, overflow budget), and counts it. A record that enters does so at
/// its entry time rounded down to the tick; one rejected is rejected at its partition's
/// watermark, not below the worker's frontier.
fn admit(
    reading: &mut Reading,
    bounds: &SliceBounds<'_>,
    accounting: &mut Accounting,
    arrival: Arrival,
) -> Admitted {
    let settings = bounds.settings;
    let reject_time = reading.clock.watermark().max(bounds.frontier);
    let (mut record, position) = match arrival {
        Arrival::DeadLetter(dead) => {
            let counts = accounting.stream_mut(dead.stream);
            counts.read += 1;
            counts.dead_lettered += 1;
            return Admitted::Rejected(reject_time, Rejected::DeadLetter(dead));
        }
        Arrival::Event { record, position } => (record, position),
    };
    let counts = accounting.stream_mut(record.stream);
    counts.read += 1;
    let name = reading.partition.name();
    match reading
        .clock
        .judge(&settings.lateness, record.stream, record.ts)
    {
        Admission::Enter {
            entry,
            late,
            attribution_only,
        } => {
            let checked = reading
                .guards
                .admit(settings, &mut record, !attribution_only);
            if let Err(reason) = checked {
                counts.dead_lettered += 1;
                let dead = dead_letter(settings, &record, name, position, reason);
                return Admitted::Rejected(reject_time, Rejected::DeadLetter(dead));
            }
            reading.clock.advance(record.ts);
            counts.late += u64::from(late);
            counts.attribution_only += u64::from(attribution_only);
            Admitted::Enter(record, bounds.tick.floor(entry))
        }
        Admission::TooFarInFuture { ahead_ms } => {
            counts.dead_lettered += 1;
            let schema = settings.schema.stream(record.stream);
            let reason = Invalid::TooFarInFuture {
                field: schema.fields()[schema.time_index()].name.clone(),
                ts: record.ts,
                ahead_ms,
            };
            let dead = dead_letter(settings, &record, name, position, reason);
            Admitted::Rejected(reject_time, Rejected::DeadLetter(dead))
        }
        Admission::TooLate { watermark } => {
            counts.too_late += 1;
            let late = too_late(&record, name, position, watermark);
            Admitted::Rejected(reject_time, Rejected::TooLate(late))
        }
    }
}

/// Releases the partitions idle past their `idle_timeout` and returns the worker's
/// frontier: the least watermark over the open partitions that are not released, and
/// the released ones' watermarks caught up to it. When every open partition is released,
/// the frontier follows the wall clock, `now − max_disorder − idle_timeout` (a live
/// source's event time is about the wall clock), never going back. `None` when every
/// partition is done.
pub(super) fn release_idle(partitions: &mut [Reading], current: Millis) -> Option<Millis> {
    // The least watermark of the open partitions that are not released.
    let mut held = None::<Millis>;
    for reading in partitions.iter_mut().filter(|r| !r.done) {
        if let Some(timeout) = reading.partition.idle_timeout() {
            if reading
                .quiet_since
                .is_some_and(|since| since.elapsed() >= timeout)
            {
                reading.released = true;
            }
        }
        if !reading.released {
            let watermark = reading.clock.watermark();
            held = Some(held.map_or(watermark, |h| h.min(watermark)));
        }
    }
    if partitions.iter().all(|r| r.done) {
        return None;
    }
    let frontier = if let Some(held) = held {
        held
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        let lag = partitions
            .iter()
            .filter(|r| !r.done)
            .filter_map(|r| {
                r.partition
                    .idle_timeout()
                    .map(|t| t.as_millis() as Millis + r.clock.watermark_lag())
            })
            .max()
            .unwrap_or(0);
        let lowest = partitions
            .iter()
            .filter(|r| !r.done)
            .map(|r| r.clock.watermark())
            .min()
            .unwrap_or(current);
        lowest.max(now.saturating_sub(lag)).max(current)
    };
    for reading in partitions.iter_mut().filter(|r| !r.done && r.released) {
        if reading.clock.watermark() < frontier {
            reading.clock.catch_up(frontier);
            reading.partition.caught_up(frontier);
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
            "too late: the partition watermark {} had reached the record's release time, so \
             every window it could affect (from the window of ts {}) is final",
            time_text(watermark),
            time_text(record.ts)
        ),
    }
}
