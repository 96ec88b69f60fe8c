//! One partition of the generator: bids in event-time order, their children scheduled in
//! a small queue by arrival key.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::malformed::Corruption;
use super::model::{Duplicate, Model, Span};
use super::queue::{Queue, Scheduled};
use super::sample::{skewed, uniform};
use super::{Bounds, Generated};
use crate::event::{Bid, Click, Conversion, Event, EventId, Impression, Millis, StreamKind};

/// The records of one partition of a [`Generator`](super::Generator), in arrival order.
///
/// Partition `p` of `P` makes the bids `i = p, p + P, p + 2P, …` of the run, in order, with
/// `bid_id = i + 1`; its impressions, clicks and conversions take the ids `n·P + p + 1`
/// (`n` counting per stream from 0), so partitions never share an id. Children are
/// scheduled when their bid is made and wait in a queue ordered by arrival key, so memory
/// holds the records of the longest delay (conversions, late and too-late records), never
/// the run. Each record costs amortized `O(log queue)` and no allocation, except a
/// malformed line, whose text is made when it comes out.
#[derive(Debug)]
pub struct Shard {
    model: Arc<Model>,
    rng: ChaCha8Rng,
    /// Partition index and count, as `u64` for id arithmetic.
    partition: u64,
    partitions: u64,
    /// Bids of this partition: made so far and in all.
    made: u64,
    bids: u64,
    /// Event time of the next bid.
    next_ts: Millis,
    /// Event times of the partition's first and last bids.
    span: Span,
    /// Next per-partition counter of each stream's ids.
    counters: [u64; 4],
    queue: Queue,
}

impl Shard {
    pub(super) fn new(model: Arc<Model>, partition: usize) -> Shard {
        let partitions = model.config.partitions as u64;
        let p = partition as u64;
        let bids = if p < partitions {
            model.config.bids.saturating_sub(p).div_ceil(partitions)
        } else {
            0
        };
        let mut rng = ChaCha8Rng::seed_from_u64(model.config.seed);
        rng.set_stream(p);
        Shard {
            rng,
            partition: p,
            partitions,
            made: 0,
            bids,
            next_ts: model.bid_ts(p),
            span: Span {
                first: model.bid_ts(p),
                horizon: model.bid_ts(bids.saturating_sub(1) * partitions + p),
            },
            counters: [0; 4],
            queue: Queue::default(),
            model,
        }
    }

    /// True when every record of the partition has come out.
    pub fn is_finished(&self) -> bool {
        self.made == self.bids && self.queue.is_empty()
    }

    /// Records waiting in the queue (children not yet due, delayed records).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Makes the next bid and schedules its children. Returns the bid when it is due
    /// right away, `None` when it was queued or withheld as an orphan's parent.
    fn bid(&mut self) -> Option<Bid> {
        let model = &*self.model;
        let config = &model.config;
        let ts = self.next_ts;
        let bid_id = self.made * self.partitions + self.partition + 1;
        self.made += 1;
        self.next_ts = model.bid_ts(self.made * self.partitions + self.partition);
        let mut out = Out {
            model,
            rng: &mut self.rng,
            queue: &mut self.queue,
            span: self.span,
        };
        let mut next_id = |kind: StreamKind| -> EventId {
            let n = &mut self.counters[kind.index()];
            *n += 1;
            (*n - 1) * self.partitions + self.partition + 1
        };
        let campaign = model.campaigns.sample(out.rng) as u64;
        let bid = Bid {
            bid_id,
            ts,
            campaign_id: campaign + 1,
            ad_id: campaign * config.ads_per_campaign + model.ads.sample(out.rng) as u64 + 1,
            publisher_id: model.publishers.sample(out.rng) as u64 + 1,
            region: model.regions.1[model.regions.0.sample(out.rng)],
            device: model.devices.1[model.devices.0.sample(out.rng)],
            bid_price_micros: uniform(out.rng, config.bid_price_micros) as i64,
        };
        let has_children = model.impression.flip(out.rng);
        if has_children {
            let impression = Impression {
                impression_id: next_id(StreamKind::Impression),
                bid_id,
                ts: ts + uniform(out.rng, config.impression_delay_ms),
                cost_micros: bid.bid_price_micros * uniform(out.rng, Bounds::new(50, 100)) as i64
                    / 100,
            };
            out.schedule(Event::Impression(impression));
            if model.click.flip(out.rng) {
                let click = Click {
                    click_id: next_id(StreamKind::Click),
                    bid_id,
                    ts: impression.ts + skewed(out.rng, config.click_delay_ms),
                };
                let converts = model.conversion.flip(out.rng);
                if converts {
                    let conversion = Conversion {
                        conversion_id: next_id(StreamKind::Conversion),
                        click_id: click.click_id,
                        ts: click.ts + skewed(out.rng, config.conversion_delay_ms),
                        value_micros: uniform(out.rng, config.conversion_value_micros) as i64,
                    };
                    out.schedule(Event::Conversion(conversion));
                }
                if !(converts && model.orphan.flip(out.rng)) {
                    out.schedule(Event::Click(click));
                }
            }
        }
        if has_children && model.orphan.flip(out.rng) {
            return None;
        }
        let (arrival, sent) = out.extras(Event::Bid(bid));
        match sent {
            Event::Bid(sent) if arrival == ts && sent == bid => Some(sent),
            _ => {
                out.push(arrival, Scheduled::Event(sent));
                None
            }
        }
    }
}

/// The parts of a shard that scheduling a record touches.
struct Out<'a> {
    model: &'a Model,
    rng: &'a mut ChaCha8Rng,
    queue: &'a mut Queue,
    span: Span,
}

impl Out<'_> {
    fn push(&mut self, arrival: Millis, item: Scheduled) {
        self.queue.push(arrival, item);
    }

    /// Queues `event` at its arrival key, with its duplicate and malformed copy if any.
    fn schedule(&mut self, event: Event) {
        let (arrival, sent) = self.extras(event);
        self.push(arrival, Scheduled::Event(sent));
    }

    /// Draws the placement of `event` and queues its duplicate and malformed copy;
    /// returns the arrival key and the event as sent (back-dated when too late in a
    /// short run). Duplicates of the original arrive within max disorder of its event
    /// time (never late); malformed copies right at the event time.
    fn extras(&mut self, event: Event) -> (Millis, Event) {
        let (model, ts) = (self.model, event.ts());
        let placement = model.arrival(self.rng, event.kind(), ts, self.span);
        let jitter = Bounds::new(0, model.max_disorder);
        match model.duplicate(self.rng) {
            Some(Duplicate::Identical) => {
                let at = ts.saturating_add(uniform(self.rng, jitter));
                self.push(at, Scheduled::Event(event));
            }
            Some(Duplicate::Conflicting) => {
                let copy = model.conflicting(self.rng, event);
                let at = copy.ts().saturating_add(uniform(self.rng, jitter));
                self.push(at, Scheduled::Event(copy));
            }
            None => {}
        }
        if model.malformed.flip(self.rng) {
            let fields = model.schema.stream(event.kind()).fields().len();
            let corruption = Corruption::draw(self.rng, fields);
            self.push(ts, Scheduled::Malformed(event, corruption));
        }
        (placement.arrival, Model::at(event, placement.ts))
    }
}

impl Shard {
    /// The next record with its arrival key: the event time (ms) at which it is
    /// scheduled to arrive. Keys never decrease; records come out in the same order as
    /// from [`Iterator::next`]. A benchmark that maps event time to wall clock sends each
    /// record at its key.
    pub fn next_scheduled(&mut self) -> Option<(Millis, Generated)> {
        loop {
            let bids_left = self.made < self.bids;
            let due = self
                .queue
                .next_arrival()
                .is_some_and(|arrival| !bids_left || arrival < self.next_ts);
            if due {
                let (arrival, item) = self.queue.pop()?;
                return Some((
                    arrival,
                    match item {
                        Scheduled::Event(event) => Generated::Event(event),
                        Scheduled::Malformed(event, corruption) => Generated::Malformed {
                            stream: event.kind(),
                            line: corruption.render(
                                self.model.schema.stream(event.kind()),
                                &self.model.record(&event),
                            ),
                        },
                    },
                ));
            }
            if !bids_left {
                return None;
            }
            if let Some(bid) = self.bid() {
                return Some((bid.ts, Generated::Event(Event::Bid(bid))));
            }
        }
    }
}

impl Iterator for Shard {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        self.next_scheduled().map(|(_, item)| item)
    }
}
