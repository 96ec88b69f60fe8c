//! A from-scratch model of the funnel, written from `docs/semantics.md` alone.
//!
//! Nothing here uses timely, differential or the dataflow's operators: the oracle replays
//! each partition to classify its records (§1), forms the dedup groups (§2), and computes
//! the value of every aggregate at any time by brute force (§3-4). It is meant to be
//! obviously correct on small inputs, not fast.

use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::difference::Semigroup;
use diffmill::connectors::Arrival;
use diffmill::dataflow::{Attribution, FunnelSettings, Measures};
use diffmill::event::{
    to_csv_fields, DeadLetter, Event, EventId, Invalid, Millis, Origin, StreamKind, TooLate,
};
use diffmill::runtime::Accounting;

/// The aggregates at one time: the measures of every `(window start, dims)`.
pub type Aggregates = BTreeMap<(Millis, Attribution), Measures>;

/// What §1 decides for one valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The partition watermark had reached the record's release time: it never enters.
    TooLate,
    /// The record enters the dataflow at `entry`.
    Entered {
        /// `max(ts, watermark)`.
        entry: Millis,
        /// `ts < watermark`.
        late: bool,
        /// A parent whose own window was final when it arrived.
        attribution_only: bool,
    },
}

/// One valid record of a partition, with what §1 decides for it.
#[derive(Clone, Debug)]
pub struct Classified {
    /// Index of its partition.
    pub partition: usize,
    /// Its position in the partition, as given by the arrival.
    pub position: u64,
    /// The event.
    pub event: Event,
    /// The partition's watermark just before the record.
    pub watermark: Millis,
    /// Too late, or entered.
    pub fate: Fate,
}

/// A dedup group: records of one stream with one id, present over one span of time.
#[derive(Clone, Debug)]
pub struct Group {
    /// The stream.
    pub kind: StreamKind,
    /// The shared id.
    pub id: EventId,
    /// Indices into [`Oracle::records`], in the order they were considered.
    pub members: Vec<usize>,
}

/// The oracle's view of one run: every record's fate, the dedup groups, the accounting.
pub struct Oracle {
    settings: FunnelSettings,
    /// Every valid record, partition by partition, in arrival order.
    pub records: Vec<Classified>,
    /// The watermark of each partition after each of its arrivals (dead letters included).
    pub watermarks: Vec<Vec<Millis>>,
    /// The dedup groups of all streams.
    pub groups: Vec<Group>,
    dead_letters: Vec<DeadLetter>,
    accounting: Accounting,
}

impl Oracle {
    /// Replays `partitions` under `settings`.
    pub fn new(settings: &FunnelSettings, partitions: &[Vec<Arrival>]) -> Oracle {
        let mut oracle = Oracle {
            settings: settings.clone(),
            records: Vec::new(),
            watermarks: Vec::new(),
            groups: Vec::new(),
            dead_letters: Vec::new(),
            accounting: Accounting::default(),
        };
        for (partition, arrivals) in partitions.iter().enumerate() {
            oracle.replay_partition(partition, arrivals);
        }
        oracle.form_groups();
        oracle
    }

    /// Window length `W`.
    fn window(&self) -> Millis {
        self.settings.lateness.window
    }

    /// `start(ts) = ts − ts mod W`.
    pub fn start(&self, ts: Millis) -> Millis {
        ts - ts % self.window()
    }

    /// `final_at(ts) = start(ts) + W + L`.
    pub fn final_at(&self, ts: Millis) -> Millis {
        self.start(ts)
            .saturating_add(self.window())
            .saturating_add(self.settings.lateness.allowed_lateness)
    }

    /// `release(r) = final_at(reach(r))`.
    pub fn release(&self, event: &Event) -> Millis {
        let bounds = &self.settings.lateness;
        let reach = match event {
            Event::Impression(_) | Event::Conversion(_) => event.ts(),
            Event::Click(c) => c.ts.saturating_add(bounds.click_bound),
            Event::Bid(b) => {
                b.ts.saturating_add(bounds.bid_bound)
                    .saturating_add(bounds.click_bound)
            }
        };
        self.final_at(reach)
    }

    fn replay_partition(&mut self, partition: usize, arrivals: &[Arrival]) {
        let mut watermark: Millis = 0;
        let mut entered_any = false;
        let mut after = Vec::with_capacity(arrivals.len());
        for arrival in arrivals {
            match arrival {
                Arrival::DeadLetter(dead) => {
                    let counts = self.accounting.stream_mut(dead.stream);
                    counts.read += 1;
                    counts.dead_lettered += 1;
                    self.dead_letters.push(dead.clone());
                }
                Arrival::Event { event, position } => {
                    // semantics.md §1 step 0: too far ahead of the watermark.
                    let ahead_ms = event.ts().saturating_sub(watermark);
                    if entered_any && ahead_ms > self.settings.max_future_skew {
                        let counts = self.accounting.stream_mut(event.kind());
                        counts.read += 1;
                        counts.dead_lettered += 1;
                        self.dead_letters.push(DeadLetter {
                            stream: event.kind(),
                            origin: Origin {
                                source: format!("memory/{partition}"),
                                position: *position,
                            },
                            raw: to_csv_fields(event).join(","),
                            reason: Invalid::TooFarInFuture {
                                ts: event.ts(),
                                ahead_ms,
                            }
                            .to_string(),
                        });
                        after.push(watermark);
                        continue;
                    }
                    let fate = self.classify(event, watermark);
                    entered_any |= matches!(fate, Fate::Entered { .. });
                    let counts = self.accounting.stream_mut(event.kind());
                    counts.read += 1;
                    match fate {
                        Fate::TooLate => counts.too_late += 1,
                        Fate::Entered {
                            late,
                            attribution_only,
                            ..
                        } => {
                            counts.late += u64::from(late);
                            counts.attribution_only += u64::from(attribution_only);
                        }
                    }
                    self.records.push(Classified {
                        partition,
                        position: *position,
                        event: *event,
                        watermark,
                        fate,
                    });
                    watermark =
                        watermark.max(event.ts().saturating_sub(self.settings.max_disorder));
                }
            }
            after.push(watermark);
        }
        self.watermarks.push(after);
    }

    fn classify(&self, event: &Event, watermark: Millis) -> Fate {
        if watermark >= self.release(event) {
            return Fate::TooLate;
        }
        let is_parent = matches!(event, Event::Bid(_) | Event::Click(_));
        Fate::Entered {
            entry: event.ts().max(watermark),
            late: event.ts() < watermark,
            attribution_only: is_parent && watermark >= self.final_at(event.ts()),
        }
    }

    /// Groups the entered records of each stream by id, considering them in order of entry
    /// time then payload; a record entering at or after the release time of its id's
    /// current group starts a new group.
    fn form_groups(&mut self) {
        let mut entered: Vec<(Millis, Event, usize)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(index, r)| self.entry(index).map(|entry| (entry, r.event, index)))
            .collect();
        entered.sort();
        let mut current: BTreeMap<(StreamKind, EventId), usize> = BTreeMap::new();
        for (entry, event, index) in entered {
            let key = (event.kind(), event.id());
            let joins = current.get(&key).copied().filter(|&g| {
                let winner = self.winner(&self.groups[g], Millis::MAX);
                winner.is_some_and(|w| self.release(&w) > entry)
            });
            match joins {
                Some(g) => {
                    self.groups[g].members.push(index);
                    self.accounting.stream_mut(event.kind()).duplicate += 1;
                }
                None => {
                    current.insert(key, self.groups.len());
                    self.groups.push(Group {
                        kind: event.kind(),
                        id: event.id(),
                        members: vec![index],
                    });
                    self.accounting.stream_mut(event.kind()).applied += 1;
                }
            }
        }
        for group in &self.groups {
            let payloads: BTreeSet<Event> = group
                .members
                .iter()
                .map(|&m| self.records[m].event)
                .collect();
            self.accounting.stream_mut(group.kind).conflicting += payloads.len() as u64 - 1;
        }
    }

    /// The entry time of record `index`, or `None` when it was too late.
    pub fn entry(&self, index: usize) -> Option<Millis> {
        match self.records[index].fate {
            Fate::TooLate => None,
            Fate::Entered { entry, .. } => Some(entry),
        }
    }

    /// The winner of `group` among its members entered at or before `t`: the greatest
    /// `(ts, payload)`.
    pub fn winner(&self, group: &Group, t: Millis) -> Option<Event> {
        group
            .members
            .iter()
            .filter(|&&m| self.entry(m).is_some_and(|entry| entry <= t))
            .map(|&m| self.records[m].event)
            .max_by_key(|event| (event.ts(), *event))
    }

    /// The present records of stream `kind` at time `t`, by id: each group's winner among
    /// its members entered by `t`, unless that winner's release time has come.
    fn present(&self, kind: StreamKind, t: Millis) -> BTreeMap<EventId, Event> {
        let mut present = BTreeMap::new();
        for group in self.groups.iter().filter(|g| g.kind == kind) {
            if let Some(winner) = self.winner(group, t).filter(|w| t < self.release(w)) {
                let previous = present.insert(group.id, winner);
                assert!(
                    previous.is_none(),
                    "two groups of {kind} {} at {t}",
                    group.id
                );
            }
        }
        present
    }

    /// The value of every aggregate at time `t` (§3-4), zero entries dropped.
    pub fn value_at(&self, t: Millis) -> Aggregates {
        let bounds = &self.settings.lateness;
        let group_by = &self.settings.group_by;
        let bids = self.present(StreamKind::Bid, t);
        let clicks = self.present(StreamKind::Click, t);
        let bid_attribution = |bid_id: EventId, child_ts: Millis| match bids.get(&bid_id) {
            Some(Event::Bid(bid)) if child_ts <= bid.ts.saturating_add(bounds.bid_bound) => {
                Attribution::Dims(group_by.project(bid))
            }
            _ => Attribution::Unattributed,
        };
        let mut contributions: Vec<(Millis, Attribution, Measures)> = Vec::new();
        for event in bids.values() {
            if let Event::Bid(bid) = event {
                let dims = Attribution::Dims(group_by.project(bid));
                contributions.push((bid.ts, dims, Measures::bid()));
            }
        }
        for event in self.present(StreamKind::Impression, t).values() {
            if let Event::Impression(imp) = event {
                let dims = bid_attribution(imp.bid_id, imp.ts);
                contributions.push((imp.ts, dims, Measures::impression(imp.cost_micros)));
            }
        }
        for event in clicks.values() {
            if let Event::Click(click) = event {
                let dims = bid_attribution(click.bid_id, click.ts);
                contributions.push((click.ts, dims, Measures::click()));
            }
        }
        for event in self.present(StreamKind::Conversion, t).values() {
            if let Event::Conversion(conv) = event {
                let dims = match clicks.get(&conv.click_id) {
                    Some(Event::Click(click))
                        if conv.ts <= click.ts.saturating_add(bounds.click_bound) =>
                    {
                        bid_attribution(click.bid_id, click.ts)
                    }
                    _ => Attribution::Unattributed,
                };
                contributions.push((conv.ts, dims, Measures::conversion(conv.value_micros)));
            }
        }
        let mut aggregates = Aggregates::new();
        for (ts, dims, measures) in contributions {
            aggregates
                .entry((self.start(ts), dims))
                .or_default()
                .plus_equals(&measures);
        }
        aggregates.retain(|_, m| *m != Measures::default());
        aggregates
    }

    /// The start of every window an entered record counts in.
    pub fn windows(&self) -> BTreeSet<Millis> {
        (0..self.records.len())
            .filter(|&i| self.entry(i).is_some())
            .map(|i| self.start(self.records[i].event.ts()))
            .collect()
    }

    /// For every window, its value at `min(frontier, end + L) − 1` (§5): what the rows of
    /// all batches up to `frontier` must sum to. `None` is the complete input.
    pub fn expected_prefix(&self, frontier: Option<Millis>) -> Aggregates {
        let mut by_time: BTreeMap<Millis, Vec<Millis>> = BTreeMap::new();
        for window in self.windows() {
            let final_at = self.final_at(window);
            let t = frontier.map_or(final_at, |f| f.min(final_at));
            if t > 0 {
                by_time.entry(t - 1).or_default().push(window);
            }
        }
        let mut expected = Aggregates::new();
        for (t, windows) in by_time {
            expected.extend(
                self.value_at(t)
                    .into_iter()
                    .filter(|((start, _), _)| windows.contains(start)),
            );
        }
        expected
    }

    /// Each window's final value: its value at `end + L − 1`, zero entries dropped.
    pub fn final_values(&self) -> Aggregates {
        self.expected_prefix(None)
    }

    /// The dead letters, as read.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.clone()
    }

    /// The too-late records, with an empty reason (the reason's wording is the
    /// dataflow's); compare with [`too_late_key`].
    pub fn too_late(&self) -> Vec<TooLate> {
        self.records
            .iter()
            .filter(|r| r.fate == Fate::TooLate)
            .map(|r| TooLate {
                stream: r.event.kind(),
                origin: Origin {
                    source: format!("memory/{}", r.partition),
                    position: r.position,
                },
                id: r.event.id(),
                ts: r.event.ts(),
                watermark: r.watermark,
                reason: String::new(),
            })
            .collect()
    }

    /// The per-stream counts of every record read.
    pub fn accounting(&self) -> Accounting {
        self.accounting
    }
}

/// The identity of a too-late record, leaving out the wording of its reason.
pub fn too_late_key(record: &TooLate) -> (StreamKind, Origin, EventId, Millis, Millis) {
    (
        record.stream,
        record.origin.clone(),
        record.id,
        record.ts,
        record.watermark,
    )
}
