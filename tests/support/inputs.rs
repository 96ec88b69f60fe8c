//! Proptest strategies for small random funnels split into disordered partitions.
//!
//! The streams are declared at random too: each may carry extra fields (an int age, a
//! bool, a string gender in place of the device, a user id, a conversion type, a
//! quantity, ...) at random places among today's fields, and the dims, measures and
//! filters of the aggregates are drawn from the fields the streams declare.
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
    AggregateSpec, Beyond, Declaration, DimensionSpec, DurationText, Field, FieldType,
    FunnelSettings, FunnelSpec, MeasureSpec, Schema, StreamSpec,
};
use diffmill::event::{
    Bid, Click, Conversion, DeadLetter, Event, Impression, Label, Millis, Origin, Record,
    StreamKind,
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
        for kind in StreamKind::ALL {
            writeln!(
                f,
                "stream {kind}: {}",
                self.settings.schema.stream(kind).names()
            )?;
        }
        for aggregate in self.settings.aggregates.iter() {
            let measures: Vec<String> = aggregate
                .measures
                .iter()
                .map(|m| {
                    format!(
                        "{} {:?} {} {:?}",
                        m.name,
                        m.kind,
                        m.stream,
                        m.filter.as_ref().map(|f| f.text())
                    )
                })
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
                    Arrival::Event { record, position } => writeln!(f, "  {position}: {record:?}")?,
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

/// A generated event with where and when it arrives; `extras` picks the values of its
/// declared fields beyond today's.
#[derive(Clone, Copy, Debug)]
struct Placed {
    event: Event,
    extras: u64,
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

/// An extra field a stream may declare: its name, type and the values records take.
struct Extra {
    stream: StreamKind,
    name: &'static str,
    ty: FieldType,
    values: &'static [&'static str],
}

/// The extra fields of the random declarations. (A bid has 16 bytes of room beside
/// today's fields: a string needs 24, so `gender` comes in place of `device`.)
const EXTRAS: [Extra; 7] = [
    Extra {
        stream: StreamKind::Bid,
        name: "age",
        ty: FieldType::Int,
        values: &["18", "30", "45"],
    },
    Extra {
        stream: StreamKind::Bid,
        name: "vip",
        ty: FieldType::Bool,
        values: &["false", "true"],
    },
    Extra {
        stream: StreamKind::Impression,
        name: "user_id",
        ty: FieldType::Id,
        values: &["1", "2", "3"],
    },
    Extra {
        stream: StreamKind::Impression,
        name: "placement",
        ty: FieldType::String,
        values: &["feed", "search"],
    },
    Extra {
        stream: StreamKind::Click,
        name: "position",
        ty: FieldType::Int,
        values: &["1", "2", "3"],
    },
    Extra {
        stream: StreamKind::Conversion,
        name: "type",
        ty: FieldType::String,
        values: &["order", "pay"],
    },
    Extra {
        stream: StreamKind::Conversion,
        name: "quantity",
        ty: FieldType::Int,
        values: &["1", "2", "5"],
    },
];

/// The bid field `gender` that may replace `device`, and its values.
const GENDER: &[&str] = &["f", "m", "x"];

/// Declared streams: today's, each with some of the extras inserted at random places,
/// and the bids' `device` replaced by `gender` or not.
fn streams() -> impl Strategy<Value = Vec<(StreamKind, StreamSpec)>> {
    (
        prop::collection::vec((any::<bool>(), any::<Index>()), EXTRAS.len()),
        any::<bool>(),
    )
        .prop_map(|(picks, gender)| {
            StreamKind::ALL
                .iter()
                .map(|&kind| {
                    let mut spec = StreamSpec::default_for(kind);
                    if kind == StreamKind::Bid && gender {
                        let fields = &mut spec.fields.0;
                        if let Some(device) = fields.iter_mut().find(|f| f.name == "device") {
                            device.name = "gender".into();
                        }
                    }
                    for (extra, (picked, at)) in EXTRAS.iter().zip(&picks) {
                        if *picked && extra.stream == kind {
                            let fields = &mut spec.fields.0;
                            let at = at.index(fields.len() + 1);
                            fields.insert(at, Field::new(extra.name, extra.ty));
                        }
                    }
                    (kind, spec)
                })
                .collect()
        })
}

/// The values field `name` of a record takes (today's fields come from the event).
fn extra_values(name: &str) -> &'static [&'static str] {
    if name == "gender" {
        return GENDER;
    }
    EXTRAS
        .iter()
        .find(|e| e.name == name)
        .map_or(&[][..], |e| e.values)
}

/// `event` as a record of the declared `schema`: today's fields from the event, the
/// others one of their values, picked by `extras`.
fn record_of(schema: &Schema, event: &Event, extras: u64) -> Record {
    let today = Record::from(*event);
    let defaults = Schema::funnel().stream(event.kind());
    let stream = schema.stream(event.kind());
    let mut record = Record::new(event.kind(), event.id(), event.ts());
    for (index, field) in stream.fields().iter().enumerate() {
        let value = match defaults.index(&field.name) {
            Some(at) => defaults.get(&today, at),
            None => {
                let values = extra_values(&field.name);
                let mut hash = extras;
                for byte in field.name.bytes() {
                    hash = hash.rotate_left(7) ^ u64::from(byte);
                }
                let text = values[(hash % values.len() as u64) as usize];
                field
                    .ty
                    .parse(&field.name, text)
                    .expect("a value of the field's type")
            }
        };
        stream.set(&mut record, index, value);
    }
    record
}

/// A filter on `stream`'s fields and the fields it names.
const FILTERS: &[(StreamKind, &str, &[&str])] = &[
    (
        StreamKind::Bid,
        "region = 'eu' OR device IN ('app')",
        &["region", "device"],
    ),
    (StreamKind::Bid, "age >= 30 AND NOT vip", &["age", "vip"]),
    (StreamKind::Bid, "vip", &["vip"]),
    (StreamKind::Bid, "gender IN ('f', 'x')", &["gender"]),
    (
        StreamKind::Impression,
        "cost_micros > 100",
        &["cost_micros"],
    ),
    (
        StreamKind::Impression,
        "placement = 'feed' OR user_id <> 2",
        &["placement", "user_id"],
    ),
    (StreamKind::Click, "position BETWEEN 2 AND 3", &["position"]),
    (
        StreamKind::Conversion,
        "value_micros <> 3000",
        &["value_micros"],
    ),
    (StreamKind::Conversion, "type = 'order'", &["type"]),
    (
        StreamKind::Conversion,
        "quantity > 1 AND type <> 'pay'",
        &["quantity", "type"],
    ),
];

/// Measures over `schema`: counts of each stream, sums of its int and money fields,
/// distinct counts of some of its fields, each maybe filtered on the stream's own fields
/// or on the event time.
fn measure(schema: &Schema) -> impl Strategy<Value = MeasureSpec> {
    let mut bases = Vec::new();
    for kind in StreamKind::ALL {
        let stream = schema.stream(kind);
        bases.push(MeasureSpec::count("m", kind));
        for (index, field) in stream.fields().iter().enumerate() {
            if index == stream.id_index() || index == stream.time_index() {
                continue;
            }
            if field.ty.summable() {
                bases.push(MeasureSpec::sum("m", kind, &field.name));
            }
            if matches!(
                field.name.as_str(),
                "region" | "gender" | "vip" | "bid_id" | "user_id" | "click_id" | "type"
            ) {
                bases.push(MeasureSpec::count_distinct("m", kind, &field.name));
            }
        }
    }
    let filters: Vec<(StreamKind, &'static str)> = FILTERS
        .iter()
        .filter(|(kind, _, fields)| {
            fields
                .iter()
                .all(|f| schema.stream(*kind).index(f).is_some())
        })
        .map(|(kind, text, _)| (*kind, *text))
        .collect();
    (select(bases), 0usize..4, any::<Index>()).prop_map(move |(spec, filter, which)| {
        let target = spec
            .count
            .clone()
            .or(spec.sum.clone())
            .or(spec.count_distinct.clone())
            .unwrap_or_default();
        let stream = StreamKind::from_name(target.split('.').next().unwrap_or_default());
        let own: Vec<&str> = filters
            .iter()
            .filter(|(kind, _)| Some(*kind) == stream)
            .map(|(_, text)| *text)
            .collect();
        match filter {
            2 if !own.is_empty() => spec.filter(own[which.index(own.len())]),
            2 => spec.filter("ts >= 2000"),
            3 => spec.filter("NOT (ts BETWEEN 1000 AND 3000) OR ts > 6000"),
            _ => spec,
        }
    })
}

/// The bid fields `schema` allows to group by.
fn dims_of(schema: &Schema) -> Vec<String> {
    let bids = schema.stream(StreamKind::Bid);
    bids.fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| *i != bids.id_index() && f.ty.groupable() && f.ty != FieldType::Timestamp)
        .map(|(_, f)| f.name.clone())
        .collect()
}

fn aggregate(schema: &Schema) -> impl Strategy<Value = AggregateSpec> {
    (
        select(vec![500u64, 1_000, 2_000]),
        select(vec![None, Some(0u64), Some(700), Some(1_500)]),
        subsequence(dims_of(schema), 0..=3),
        prop::collection::vec(measure(schema), 1..=4),
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

fn dimensions(schema: &Schema) -> impl Strategy<Value = Vec<(String, DimensionSpec)>> {
    let names: Vec<String> = ["region", "campaign_id", "gender", "age"]
        .into_iter()
        .filter(|name| schema.stream(StreamKind::Bid).index(name).is_some())
        .map(str::to_owned)
        .collect();
    let bound = (
        select(names),
        1usize..=2,
        select(vec![Beyond::Other, Beyond::DeadLetter]),
    )
        .prop_map(|(name, max_values, beyond)| (name, DimensionSpec { max_values, beyond }));
    prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(bound, 1..=1)]
}

fn settings() -> impl Strategy<Value = FunnelSettings> {
    streams().prop_flat_map(|streams| {
        let schema = Schema::resolve(&streams.iter().cloned().collect())
            .expect("the random streams are valid");
        (
            Just(streams),
            (
                select(vec![500u64, 1_000]),
                select(vec![0u64, 700, 1_500]),
                select(vec![0u64, 500, 2_000]),
                select(vec![0u64, 500, 2_000]),
                select(vec![0u64, 100, 250, 500]),
                // Small skews make some records too far ahead of their partition's
                // watermark.
                select(vec![u64::MAX, 24 * 3_600_000, 1_500, 3_000]),
                // The default tick (up to 50 ms here: a tenth of the disorder, dividing
                // every window and lateness), or exact entry times.
                select(vec![None, Some(1u64)]),
            ),
            subsequence(dims_of(&schema), 0..=3),
            prop_oneof![
                2 => Just(Vec::new()),
                1 => prop::collection::vec(aggregate(&schema), 1..=3),
            ],
            dimensions(&schema),
        )
            .prop_map(|(streams, durations, dims, aggregates, bounds)| {
                let (window, allowed_lateness, bid_bound, click_bound, max_disorder, skew, tick) =
                    durations;
                let ms = DurationText::from_millis;
                let old_form = aggregates.is_empty();
                let funnel = FunnelSpec {
                    window: old_form.then_some(ms(window)),
                    group_by: old_form.then_some(dims),
                    allowed_lateness: ms(allowed_lateness),
                    bid_retention: ms(bid_bound),
                    click_retention: ms(click_bound),
                    max_disorder: ms(max_disorder),
                    max_future_skew: ms(skew),
                    emit_interval: ms(0),
                    tick: tick.map(ms),
                };
                let mut declaration = Declaration::default().funnel(funnel);
                for (kind, spec) in streams {
                    declaration = declaration.stream(kind, spec);
                }
                for (i, mut aggregate) in aggregates.into_iter().enumerate() {
                    aggregate.name = format!("a{i}");
                    declaration = declaration.aggregate(aggregate);
                }
                for (name, bound) in bounds {
                    declaration = declaration.dimension(name, bound);
                }
                declaration.resolve().expect("a valid declaration")
            })
    })
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
    (event, any::<u64>(), 0usize..4, delay()).prop_map(|(event, extras, partition, delay)| Placed {
        event,
        extras,
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
                        // A changed payload may change the declared extra fields too.
                        let extras = match kind {
                            Change::Payload => original.extras.rotate_left(17),
                            _ => original.extras,
                        };
                        all.push(Placed {
                            event: duplicate(original.event, kind),
                            extras,
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
    Record(Record),
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
    let mut timed: Vec<Vec<(Millis, usize, Record)>> = vec![Vec::new(); count];
    for (seq, p) in placed.into_iter().enumerate() {
        let delay = match p.delay {
            Delay::Within(percent) => settings.max_disorder * percent / 100,
            Delay::Beyond(extra) => settings.max_disorder + extra,
        };
        let record = record_of(&settings.schema, &p.event, p.extras);
        timed[p.partition % count].push((p.event.ts() + delay, seq, record));
    }
    let mut partitions: Vec<Vec<Slot>> = timed
        .into_iter()
        .map(|mut records| {
            records.sort();
            records
                .into_iter()
                .map(|(_, _, r)| Slot::Record(r))
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
                        Slot::Record(record) => Arrival::Event { record, position },
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
