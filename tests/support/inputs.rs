//! Proptest strategies for small random funnels split into disordered partitions.
//!
//! A case is a handful of bids with dims from small domains, children that reference them
//! (and ids that do not exist: orphans), timestamps over a few windows, identical and
//! conflicting duplicates, and dead letters, dealt into 1-4 partitions. Each record gets a
//! delay; a partition delivers its records in order of `ts + delay`, so a delay within the
//! max disorder keeps a record on time, a longer one makes it late, and a much longer one
//! too late. Parents after children and conversions before clicks come out of the same
//! random delays and timestamps.

use std::fmt;

use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};

use diffmill::connectors::Arrival;
use diffmill::declare::{
    AggregateSpec, Beyond, Declaration, DimensionSpec, DurationText, FunnelSettings, FunnelSpec,
    MeasureSpec,
};
use diffmill::event::{
    Bid, Click, Conversion, DeadLetter, Event, Impression, Label, Millis, Origin, StreamKind,
};

/// Event times are drawn from `0..TS_RANGE`: a few windows.
const TS_RANGE: Millis = 8_000;

/// The grid most event times and delays fall on (every setting is a multiple of 50).
const GRID: Millis = 50;

/// One generated input: settings, partitions of arrivals, and the poll chunk size.
#[derive(Clone)]
pub struct Case {
    /// The funnel settings.
    pub settings: FunnelSettings,
    /// The partitions, each in arrival order.
    pub partitions: Vec<Vec<Arrival>>,
    /// Most arrivals returned by one poll.
    pub chunk: usize,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.settings.lateness;
        writeln!(
            f,
            "bid_bound {} click_bound {} disorder {} skew {} chunk {} bounds {:?}",
            l.bid_bound,
            l.click_bound,
            self.settings.max_disorder,
            self.settings.max_future_skew,
            self.chunk,
            self.settings.bounds
        )?;
        for aggregate in self.settings.aggregates.iter() {
            let measures: Vec<String> = aggregate
                .measures
                .iter()
                .map(|m| format!("{} {:?} {} {:?}", m.name, m.kind, m.stream, m.filter.as_ref().map(|f| f.text())))
                .collect();
            writeln!(
                f,
                "aggregate {} window {:?} by {:?}: {}",
                aggregate.name,
                aggregate.window,
                aggregate.dims.names(),
                measures.join("; ")
            )?;
        }
        for (p, arrivals) in self.partitions.iter().enumerate() {
            writeln!(f, "partition {p}:")?;
            for arrival in arrivals {
                match arrival {
                    Arrival::Event { record, position } => {
                        writeln!(f, "  {position}: {record:?}")?
                    }
                    Arrival::DeadLetter(dead) => {
                        writeln!(f, "  {}: dead letter {}", dead.origin.position, dead.stream)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// How long after its event time a record reaches its partition, relative to the disorder.
#[derive(Clone, Copy, Debug)]
enum Delay {
    /// `percent`% of the max disorder: never late.
    Within(u64),
    /// The max disorder plus this much: late unless the partition is quiet.
    Beyond(Millis),
}

/// A generated event with where and when it arrives.
#[derive(Clone, Copy, Debug)]
struct Placed {
    event: Event,
    partition: usize,
    delay: Delay,
}

/// Which change a conflicting duplicate makes to the original.
#[derive(Clone, Copy, Debug)]
enum Change {
    Identical,
    /// A different amount or dims, same `ts`.
    Payload,
    /// A later or earlier `ts` (by this signed amount).
    Shift(i64),
}

/// The bid fields a case may group by.
const DIMS: [&str; 5] = ["campaign_id", "ad_id", "publisher_id", "region", "device"];

/// Measures a case may declare: what they read, optionally filtered on the stream's own
/// fields or on the event time.
fn measure() -> impl Strategy<Value = MeasureSpec> {
    let base = prop_oneof![
        Just(MeasureSpec::count("m", StreamKind::Bid)),
        Just(MeasureSpec::count("m", StreamKind::Impression)),
        Just(MeasureSpec::count("m", StreamKind::Click)),
        Just(MeasureSpec::count("m", StreamKind::Conversion)),
        Just(MeasureSpec::sum("m", StreamKind::Impression, "cost_micros")),
        Just(MeasureSpec::sum("m", StreamKind::Conversion, "value_micros")),
        Just(MeasureSpec::sum("m", StreamKind::Bid, "bid_price_micros")),
        Just(MeasureSpec::count_distinct("m", StreamKind::Bid, "region")),
        Just(MeasureSpec::count_distinct("m", StreamKind::Impression, "bid_id")),
        Just(MeasureSpec::count_distinct("m", StreamKind::Conversion, "click_id")),
    ];
    (base, 0usize..4).prop_map(|(spec, filter)| {
        let target = spec
            .count
            .clone()
            .or(spec.sum.clone())
            .or(spec.count_distinct.clone())
            .unwrap_or_default();
        let own = match target.split('.').next() {
            Some("bid") => "region = 'eu' OR device IN ('app')",
            Some("impression") => "cost_micros > 100",
            Some("conversion") => "value_micros <> 3000",
            _ => "ts >= 2000",
        };
        match filter {
            2 => spec.filter(own),
            3 => spec.filter("NOT (ts BETWEEN 1000 AND 3000) OR ts > 6000"),
            _ => spec,
        }
    })
}

fn aggregate() -> impl Strategy<Value = AggregateSpec> {
    (
        select(vec![500u64, 1_000, 2_000]),
        select(vec![None, Some(0u64), Some(700), Some(1_500)]),
        subsequence(DIMS.to_vec(), 0..=3),
        prop::collection::vec(measure(), 1..=4),
    )
        .prop_map(|(window, lateness, dims, measures)| {
            let mut spec = AggregateSpec::new("a", "1ms").group_by(dims);
            spec.window = DurationText::from_millis(window);
            spec.allowed_lateness = lateness.map(DurationText::from_millis);
            for (j, mut measure) in measures.into_iter().enumerate() {
                measure.name = format!("m{j}");
                spec = spec.measure(measure);
            }
            spec
        })
}

fn dimensions() -> impl Strategy<Value = Vec<(&'static str, DimensionSpec)>> {
    let bound = (
        select(vec!["region", "campaign_id"]),
        1usize..=2,
        select(vec![Beyond::Other, Beyond::DeadLetter]),
    )
        .prop_map(|(name, max_values, beyond)| (name, DimensionSpec { max_values, beyond }));
    prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(bound, 1..=1)]
}

fn settings() -> impl Strategy<Value = FunnelSettings> {
    (
        select(vec![500u64, 1_000]),
        select(vec![0u64, 700, 1_500]),
        select(vec![0u64, 500, 2_000]),
        select(vec![0u64, 500, 2_000]),
        select(vec![0u64, 100, 250, 500]),
        subsequence(DIMS.to_vec(), 0..=DIMS.len()),
        // Small skews make some records too far ahead of their partition's watermark.
        select(vec![u64::MAX, 24 * 3_600_000, 1_500, 3_000]),
        prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(aggregate(), 1..=3)],
        dimensions(),
    )
        .prop_map(
            |(
                window,
                allowed_lateness,
                bid_bound,
                click_bound,
                max_disorder,
                dims,
                max_future_skew,
                aggregates,
                bounds,
            )| {
                let ms = DurationText::from_millis;
                let old_form = aggregates.is_empty();
                let funnel = FunnelSpec {
                    window: old_form.then_some(ms(window)),
                    group_by: old_form.then(|| dims.iter().map(|d| d.to_string()).collect()),
                    allowed_lateness: ms(allowed_lateness),
                    bid_retention: ms(bid_bound),
                    click_retention: ms(click_bound),
                    max_disorder: ms(max_disorder),
                    max_future_skew: ms(max_future_skew),
                    emit_interval: ms(0),
                };
                let mut declaration = Declaration::default().funnel(funnel);
                for (i, mut aggregate) in aggregates.into_iter().enumerate() {
                    aggregate.name = format!("a{i}");
                    declaration = declaration.aggregate(aggregate);
                }
                for (name, bound) in bounds {
                    declaration = declaration.dimension(name, bound);
                }
                declaration.resolve().expect("a valid declaration")
            },
        )
}

fn label(text: &str) -> Label {
    Label::new(text).expect("short label")
}

/// Event times, mostly on a grid that the window, lateness, bounds and disorder of
/// [`settings`] all align with, so that exact boundaries (a child at exactly its parent's
/// bound, a watermark at exactly a release time) come up often.
fn ts() -> impl Strategy<Value = Millis> {
    prop_oneof![
        3 => (0..TS_RANGE / GRID).prop_map(|i| i * GRID),
        1 => 0..TS_RANGE,
    ]
}

fn bid() -> impl Strategy<Value = Event> {
    (
        1u64..=5,
        ts(),
        1u64..=2,
        1u64..=2,
        1u64..=2,
        select(vec!["eu", "us"]),
        select(vec!["app", "web"]),
        select(vec![100i64, 300]),
    )
        .prop_map(
            |(bid_id, ts, campaign_id, ad_id, publisher_id, region, device, price)| {
                Event::Bid(Bid {
                    bid_id,
                    ts,
                    campaign_id,
                    ad_id,
                    publisher_id,
                    region: label(region),
                    device: label(device),
                    bid_price_micros: price,
                })
            },
        )
}

fn impression() -> impl Strategy<Value = Event> {
    (1u64..=6, 1u64..=6, ts(), select(vec![100i64, 250])).prop_map(
        |(impression_id, bid_id, ts, cost_micros)| {
            Event::Impression(Impression {
                impression_id,
                bid_id,
                ts,
                cost_micros,
            })
        },
    )
}

fn click() -> impl Strategy<Value = Event> {
    (1u64..=5, 1u64..=6, ts()).prop_map(|(click_id, bid_id, ts)| {
        Event::Click(Click {
            click_id,
            bid_id,
            ts,
        })
    })
}

fn conversion() -> impl Strategy<Value = Event> {
    (1u64..=5, 1u64..=6, ts(), select(vec![1_000i64, 3_000])).prop_map(
        |(conversion_id, click_id, ts, value_micros)| {
            Event::Conversion(Conversion {
                conversion_id,
                click_id,
                ts,
                value_micros,
            })
        },
    )
}

fn delay() -> impl Strategy<Value = Delay> {
    prop_oneof![
        4 => select(vec![0u64, 50, 100]).prop_map(Delay::Within),
        2 => (0u64..=100).prop_map(Delay::Within),
        1 => (1u64..3_000 / GRID).prop_map(|i| Delay::Beyond(i * GRID)),
        1 => (1u64..3_000).prop_map(Delay::Beyond),
        1 => (3_000 / GRID..12_000 / GRID).prop_map(|i| Delay::Beyond(i * GRID)),
    ]
}

fn placed(event: impl Strategy<Value = Event>) -> impl Strategy<Value = Placed> {
    (event, 0usize..4, delay()).prop_map(|(event, partition, delay)| Placed {
        event,
        partition,
        delay,
    })
}

fn copy() -> impl Strategy<Value = (Index, Change, usize, Delay)> {
    let kind = prop_oneof![
        2 => Just(Change::Identical),
        1 => Just(Change::Payload),
        1 => (-6i64..=6).prop_map(|i| Change::Shift(i * 50)),
    ];
    (any::<Index>(), kind, 0usize..4, delay())
}

fn dead_letter() -> impl Strategy<Value = (StreamKind, usize, Index)> {
    (select(StreamKind::ALL.to_vec()), 0usize..4, any::<Index>())
}

/// A duplicate of `event` changed as `copy` says.
fn duplicate(event: Event, copy: Change) -> Event {
    let shift = |ts: Millis, by: i64| ts.saturating_add_signed(by);
    match (event, copy) {
        (_, Change::Identical) => event,
        (Event::Bid(mut b), Change::Payload) => {
            b.campaign_id = 3 - b.campaign_id;
            b.bid_price_micros += 1;
            Event::Bid(b)
        }
        (Event::Impression(mut i), Change::Payload) => {
            i.cost_micros += 50;
            Event::Impression(i)
        }
        (Event::Click(mut c), Change::Payload) => {
            c.bid_id = c.bid_id % 6 + 1;
            Event::Click(c)
        }
        (Event::Conversion(mut c), Change::Payload) => {
            c.value_micros += 500;
            Event::Conversion(c)
        }
        (Event::Bid(mut b), Change::Shift(by)) => {
            b.ts = shift(b.ts, by);
            Event::Bid(b)
        }
        (Event::Impression(mut i), Change::Shift(by)) => {
            i.ts = shift(i.ts, by);
            Event::Impression(i)
        }
        (Event::Click(mut c), Change::Shift(by)) => {
            c.ts = shift(c.ts, by);
            Event::Click(c)
        }
        (Event::Conversion(mut c), Change::Shift(by)) => {
            c.ts = shift(c.ts, by);
            Event::Conversion(c)
        }
    }
}

/// Where an anchored child lands relative to its parent.
#[derive(Clone, Copy, Debug)]
enum Anchor {
    /// At the parent's own `ts`.
    Same,
    /// Exactly at the match bound: still matches.
    AtBound,
    /// Just beyond the match bound: does not match.
    BeyondBound,
    /// Just before the parent.
    Before,
}

fn anchor() -> impl Strategy<Value = Option<(Index, Anchor)>> {
    prop_oneof![
        1 => Just(None),
        1 => (
            any::<Index>(),
            select(vec![Anchor::Same, Anchor::AtBound, Anchor::BeyondBound, Anchor::Before]),
        )
            .prop_map(Some),
    ]
}

/// The `ts` of a child anchored at a parent's `ts` with match bound `bound`.
fn anchored_ts(parent: Millis, bound: Millis, anchor: Anchor) -> Millis {
    match anchor {
        Anchor::Same => parent,
        Anchor::AtBound => parent + bound,
        Anchor::BeyondBound => parent + bound + GRID,
        Anchor::Before => parent.saturating_sub(GRID),
    }
}

/// Points the children with an anchor at a parent among `parents` (bids for impressions
/// and clicks, clicks for conversions), moving their `ts` next to the parent's.
fn anchor_children(
    settings: &FunnelSettings,
    children: &mut [(Placed, Option<(Index, Anchor)>)],
    parents: &[Placed],
) {
    if parents.is_empty() {
        return;
    }
    let bounds = &settings.lateness;
    for (child, link) in children.iter_mut() {
        let Some((which, anchor)) = *link else {
            continue;
        };
        let parent = parents[which.index(parents.len())].event;
        child.event = match (child.event, parent) {
            (Event::Impression(mut i), Event::Bid(b)) => {
                i.bid_id = b.bid_id;
                i.ts = anchored_ts(b.ts, bounds.bid_bound, anchor);
                Event::Impression(i)
            }
            (Event::Click(mut c), Event::Bid(b)) => {
                c.bid_id = b.bid_id;
                c.ts = anchored_ts(b.ts, bounds.bid_bound, anchor);
                Event::Click(c)
            }
            (Event::Conversion(mut v), Event::Click(c)) => {
                v.click_id = c.click_id;
                v.ts = anchored_ts(c.ts, bounds.click_bound, anchor);
                Event::Conversion(v)
            }
            (event, _) => event,
        };
    }
}

/// A small random funnel over 1-4 partitions, with its settings and poll chunk.
pub fn case() -> impl Strategy<Value = Case> {
    let events = (
        prop::collection::vec(placed(bid()), 0..6),
        prop::collection::vec((placed(impression()), anchor()), 0..8),
        prop::collection::vec((placed(click()), anchor()), 0..6),
        prop::collection::vec((placed(conversion()), anchor()), 0..6),
    );
    (
        settings(),
        events,
        prop::collection::vec(copy(), 0..4),
        prop::collection::vec(dead_letter(), 0..3),
        1usize..=4,
        select(vec![1usize, 2, 3, 7, 1024]),
    )
        .prop_map(
            |(settings, (b, mut i, mut c, mut v), copies, dead, count, chunk)| {
                anchor_children(&settings, &mut i, &b);
                anchor_children(&settings, &mut c, &b);
                let clicks: Vec<Placed> = c.iter().map(|(p, _)| *p).collect();
                anchor_children(&settings, &mut v, &clicks);
                let mut all: Vec<Placed> = b;
                all.extend(i.into_iter().chain(c).chain(v).map(|(p, _)| p));
                if !all.is_empty() {
                    for (which, kind, partition, delay) in copies {
                        let original = all[which.index(all.len())];
                        all.push(Placed {
                            event: duplicate(original.event, kind),
                            partition,
                            delay,
                        });
                    }
                }
                let partitions = deal(&settings, all, dead, count);
                Case {
                    settings,
                    partitions,
                    chunk,
                }
            },
        )
}

/// A record of a partition before positions are numbered.
enum Slot {
    Event(Event),
    Dead(StreamKind),
}

/// Deals events into `count` partitions, each ordered by arrival time `ts + delay`, then
/// inserts the dead letters, and numbers the positions from 1.
fn deal(
    settings: &FunnelSettings,
    placed: Vec<Placed>,
    dead: Vec<(StreamKind, usize, Index)>,
    count: usize,
) -> Vec<Vec<Arrival>> {
    let mut timed: Vec<Vec<(Millis, usize, Event)>> = vec![Vec::new(); count];
    for (seq, p) in placed.into_iter().enumerate() {
        let delay = match p.delay {
            Delay::Within(percent) => settings.max_disorder * percent / 100,
            Delay::Beyond(extra) => settings.max_disorder + extra,
        };
        timed[p.partition % count].push((p.event.ts() + delay, seq, p.event));
    }
    let mut partitions: Vec<Vec<Slot>> = timed
        .into_iter()
        .map(|mut records| {
            records.sort();
            records
                .into_iter()
                .map(|(_, _, e)| Slot::Event(e))
                .collect()
        })
        .collect();
    for (stream, partition, at) in dead {
        let records = &mut partitions[partition % count];
        let at = at.index(records.len() + 1);
        records.insert(at, Slot::Dead(stream));
    }
    partitions
        .into_iter()
        .enumerate()
        .map(|(p, records)| {
            records
                .into_iter()
                .enumerate()
                .map(|(i, slot)| {
                    let position = i as u64 + 1;
                    match slot {
                        Slot::Event(event) => Arrival::Event {
                            record: event.into(),
                            position,
                        },
                        Slot::Dead(stream) => Arrival::DeadLetter(DeadLetter {
                            stream,
                            origin: Origin {
                                source: format!("memory/{p}"),
                                position,
                            },
                            raw: "not,a,record".into(),
                            reason: "bad CSV: generated dead letter".into(),
                        }),
                    }
                })
                .collect()
        })
        .collect()
}
