//! The hot operators of the funnel, each alone over generated events: dedup, the
//! bid-impression join with attribution, the windowed aggregation, and the whole funnel.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use differential_dataflow::input::InputSession;
use differential_dataflow::VecCollection;
use diffmill::connectors::generator::{Generated, Generator, GeneratorConfig};
use diffmill::dataflow::{ad_funnel, Attribute, DedupById, Facts, Parent};
use diffmill::declare::{FunnelSettings, COMPACT_KEY_BYTES};
use diffmill::event::{Millis, Record, StreamKind};
use timely::dataflow::ProbeHandle;

/// Bids in each run (the events are about 1.7 times as many).
const BIDS: u64 = 20_000;

/// Generated records at their event time, in time order.
fn events() -> Arc<Vec<(Millis, Record)>> {
    let config = GeneratorConfig {
        bids: BIDS,
        partitions: 1,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, &FunnelSettings::default()).expect("valid defaults");
    let mut events: Vec<(Millis, Record)> = generator
        .partition(0)
        .filter_map(|item| match item {
            Generated::Event(event) => Some((event.ts(), generator.record(&event))),
            Generated::Malformed { .. } => None,
        })
        .collect();
    events.sort_by_key(|(ts, _)| *ts);
    Arc::new(events)
}

/// Feeds `records` (in time order) to the dataflow `build` makes, and runs it to the end.
fn drive<D, F>(records: &Arc<Vec<(Millis, D)>>, build: F)
where
    D: timely::ExchangeData + differential_dataflow::Data + Sync,
    F: for<'a> FnOnce(VecCollection<'a, Millis, D>) -> ProbeHandle<Millis> + Send + Sync + 'static,
{
    let records = Arc::clone(records);
    timely::execute_directly(move |worker| {
        let mut input = InputSession::new();
        let probe = worker.dataflow::<Millis, _, _>(|scope| build(input.to_collection(scope)));
        for (time, record) in records.iter() {
            if time > input.time() {
                input.advance_to(*time);
            }
            input.insert(record.clone());
        }
        input.close();
        worker.step_while(|| !probe.done());
    });
}

fn dedup(c: &mut Criterion) {
    // Every bid, and every tenth one a second time.
    let bids: Vec<(Millis, Record)> = events()
        .iter()
        .filter(|(_, record)| record.stream == StreamKind::Bid)
        .flat_map(|(ts, bid)| {
            let copies = if bid.id % 10 == 0 { 2 } else { 1 };
            std::iter::repeat_n((*ts, *bid), copies)
        })
        .collect();
    let bids = Arc::new(bids);
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(bids.len() as u64));
    group.bench_function("bids", |b| {
        b.iter(|| {
            drive(&bids, |bids| {
                bids.dedup_by_id(|bid: &Record| bid.ts + 60_000, Arc::default())
                    .probe()
                    .0
            })
        })
    });
    group.finish();
}

fn join(c: &mut Criterion) {
    let events = events();
    let settings = FunnelSettings::default();
    let mut group = c.benchmark_group("join");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("impressions_to_bids", |b| {
        b.iter(|| {
            let facts = Arc::new(Facts::new(&settings));
            drive(&events, move |events| {
                let parents = Arc::clone(&facts);
                let bids = events
                    .clone()
                    .flat_map(move |record| {
                        (record.stream == StreamKind::Bid).then(|| {
                            let fact = parents.fact(&record);
                            let attribution = parents.bid_attribution::<COMPACT_KEY_BYTES>(&record);
                            (
                                fact.id,
                                Parent {
                                    ts: fact.ts,
                                    attribution,
                                },
                            )
                        })
                    })
                    .arrange_by_key();
                events
                    .flat_map(move |record| {
                        (record.stream == StreamKind::Impression)
                            .then(|| (facts.parent(&record), facts.fact(&record)))
                    })
                    .attribute(bids, 3_600_000)
                    .probe()
                    .0
            })
        })
    });
    group.finish();
}

fn window(c: &mut Criterion) {
    let events = events();
    let settings = FunnelSettings::default();
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("bids_by_campaign_region", |b| {
        b.iter(|| {
            let facts = Arc::new(Facts::new(&settings));
            drive(&events, move |events| {
                events
                    .filter(|record| record.stream == StreamKind::Bid)
                    .explode(move |bid| {
                        let fact = facts.fact(&bid);
                        let attribution = facts.bid_attribution::<COMPACT_KEY_BYTES>(&bid);
                        facts.contribution(0, StreamKind::Bid, &fact, &attribution)
                    })
                    .consolidate()
                    .probe()
                    .0
            })
        })
    });
    group.finish();
}

fn funnel(c: &mut Criterion) {
    let events = events();
    let settings = FunnelSettings::default();
    let mut group = c.benchmark_group("funnel");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("all_streams", |b| {
        b.iter(|| {
            let settings = settings.clone();
            drive(&events, move |events| {
                // The default dims fit the compact key, as in a run.
                let (aggregates, _traces) =
                    ad_funnel::<COMPACT_KEY_BYTES>(events, &settings, &Default::default());
                aggregates.consolidate().probe().0
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = dedup, join, window, funnel
}
criterion_main!(benches);
