//! Click fraud: clicks on ads that were never shown, counted per publisher and 5-minute
//! window, by a graph built from diffmill's operators at the dataflow level (no `Funnel`).
//!
//! The input is the built-in generator's funnel plus forged clicks: a click farm clicks
//! half of publisher 3's bids and a stray bot every 500th bid, half a second after the
//! bid. Only a forged click on a bid that won no impression is provably fraud, and that is
//! what the graph finds: ingest with partition watermarks, split by stream,
//! `dedup_by_id`, `antijoin` the clicks with the bid ids that have an impression, join
//! the rest with their bid for the publisher (`attribute`; a click whose bid is missing
//! counts under `unattributed`), and count per window. Input and settings are fixed, so
//! the answer is exact and `tests/examples.rs` recomputes it from scratch.
//!
//! Run it with `cargo run --example click_fraud -- -w 2`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context};
use clap::Parser;
use diffmill::connectors::generator::{Generator, GeneratorConfig};
use diffmill::connectors::{Arrival, MemorySource, Poll, Source};
use diffmill::dataflow::{Attribute, DedupById, Parent};
use diffmill::declare::{
    Attribution, Declaration, DurationText, FunnelSpec, KeyLayout, Schema, Value,
};
use diffmill::event::{Click, Event, Millis, Record, StreamKind};
use diffmill::observe::Observer;
use diffmill::runtime::{ingest, IngestContext, Progress, Stop};
use timely::dataflow::ProbeHandle;

/// The publisher whose bids the click farm clicks.
const FARM_PUBLISHER: u64 = 3;
/// Forged clicks take ids far above the generator's.
const FORGED_ID_BASE: u64 = 1 << 40;

/// Counts the clicks without an impression per publisher and 5-minute window.
#[derive(Parser)]
struct Args {
    /// Worker threads.
    #[arg(short, long, default_value = "1")]
    workers: NonZeroUsize,
}

/// `(window start, publisher)` → clicks without an impression.
type FraudCounts = BTreeMap<(Millis, Attribution), isize>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let funnel = FunnelSpec {
        window: Some(DurationText::from_millis(5 * 60_000)),
        ..FunnelSpec::default()
    };
    let settings = Declaration::default().funnel(funnel).resolve()?;
    let window = settings.aggregates[0].window;
    let bids_schema = Arc::clone(Schema::funnel().stream(StreamKind::Bid));
    let publisher = KeyLayout::new(&bids_schema, &["publisher_id"], &[])
        .map_err(|(_, problem)| anyhow!(problem))?;
    let shown_publisher = publisher.clone();
    let config = GeneratorConfig {
        bids: 20_000,
        rate: 20,
        too_late: 0.0,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config, &settings)?;
    let source = Arc::new(with_forged_clicks(&generator)?);
    let counts: Arc<Mutex<FraudCounts>> = Arc::default();
    let progress: Arc<Progress> = Arc::default();

    let worker_counts = Arc::clone(&counts);
    let worker_progress = Arc::clone(&progress);
    let guards = timely::execute(
        timely::Config::process(args.workers.get()),
        move |worker| -> Result<(), std::io::Error> {
            let partitions = source.partitions(worker.index(), worker.peers())?;
            // The result's frontier: ingest reads no further than a little ahead of it.
            let probe = ProbeHandle::new();
            let context = IngestContext {
                progress: Arc::clone(&worker_progress),
                stop: Stop::new(),
                failure: Rc::new(RefCell::new(None)),
                output_frontier: probe.clone(),
                written_frontier: probe.clone(),
                observer: Observer::disabled(),
            };
            let counts = Arc::clone(&worker_counts);
            let dedup = worker_progress.dedup.clone();
            let settings = settings.clone();
            let (bids_schema, publisher) = (Arc::clone(&bids_schema), publisher.clone());
            worker.dataflow::<Millis, _, _>(|scope| {
                let lateness = settings.lateness;
                // Dead letters, too-late records and stop notices are unused here.
                let records = ingest(scope, &settings, partitions, context.clone()).records;
                let of = |stream: StreamKind| {
                    records.clone().filter(move |r: &Record| r.stream == stream)
                };

                // Each record's state is released once every window it can change is
                // final. Impressions are parents here: clicks follow them within the bid
                // match bound. (Ingest judges too-late records by the funnel's rules, for
                // which impressions are leaves; this input has no too-late records.)
                let bids = of(StreamKind::Bid).dedup_by_id(
                    move |b: &Record| lateness.release_time(StreamKind::Bid, b.ts),
                    Arc::clone(&dedup[StreamKind::Bid.index()]),
                );
                let impressions = of(StreamKind::Impression).dedup_by_id(
                    move |i: &Record| lateness.final_at(i.ts.saturating_add(lateness.bid_bound)),
                    Arc::clone(&dedup[StreamKind::Impression.index()]),
                );
                let clicks = of(StreamKind::Click).dedup_by_id(
                    move |c: &Record| lateness.final_at(c.ts),
                    Arc::clone(&dedup[StreamKind::Click.index()]),
                );

                // The parent (bid) id of an impression or a click.
                let bid_of = |stream: StreamKind| {
                    let schema = Arc::clone(Schema::funnel().stream(stream));
                    move |r: &Record| schema.parent(r)
                };
                let impression_bid = bid_of(StreamKind::Impression);
                let click_bid = bid_of(StreamKind::Click);
                let shown = impressions.map(move |i| impression_bid(&i)).distinct();
                let unshown_clicks = clicks.map(move |c| (click_bid(&c), c)).antijoin(shown);

                let bid_publishers = bids
                    .map(move |b| {
                        let attribution = Attribution::Dims(publisher.key_of(&bids_schema, &b));
                        (
                            b.id,
                            Parent {
                                ts: b.ts,
                                attribution,
                            },
                        )
                    })
                    .arrange_by_key();
                unshown_clicks
                    .attribute(bid_publishers, lateness.bid_bound)
                    .map(move |(click, publisher)| (window.start(click.ts), publisher))
                    .consolidate()
                    .inspect(move |&((window, publisher), time, diff)| {
                        // Changes at or after a window is final are releases of state: the
                        // window's final value stands (as the funnel's emitter does).
                        if time < lateness.final_at(window) {
                            if let Ok(mut counts) = counts.lock() {
                                *counts.entry((window, publisher)).or_default() += diff;
                            }
                        }
                    })
                    .probe_with(&probe);
            });
            while worker.step_or_park(None) {}
            context.failure.take().map_or(Ok(()), Err)
        },
    )
    .map_err(|e| anyhow!("timely: {e}"))?;
    for outcome in guards.join() {
        outcome
            .map_err(|panic| anyhow!("a worker failed: {panic}"))?
            .context("reading the input")?;
    }

    let counts = counts.lock().map_err(|_| anyhow!("a worker panicked"))?;
    let mut found = 0;
    for ((window, publisher), n) in counts.iter().filter(|(_, n)| **n != 0) {
        let publisher = shown_publisher.texts(publisher).join(",");
        println!("fraud window={window} publisher={publisher} clicks_without_impression={n}");
        found += n;
    }
    let accounting = progress.accounting();
    let clicks = accounting.stream(StreamKind::Click);
    println!(
        "found {found} clicks without an impression among {} clicks ({} duplicates, {} too late, \
         click accounting balances: {})",
        clicks.applied,
        clicks.duplicate,
        clicks.too_late,
        clicks.balances(),
    );
    Ok(())
}

/// The generator's records, partition by partition, with a forged click after each bid
/// the click farm or the stray bot picks.
fn with_forged_clicks(generator: &Generator) -> std::io::Result<MemorySource> {
    let count = generator.partition_count();
    let mut partitions = Vec::with_capacity(count);
    for p in 0..count {
        let mut arrivals = Vec::new();
        // Worker `p` of `count` owns exactly partition `p`.
        for mut partition in generator.partitions(p, count)? {
            while partition.poll(&mut arrivals, 4096)? != Poll::Done {}
        }
        let forged = arrivals.into_iter().flat_map(|arrival| {
            let click = match &arrival {
                Arrival::Event { record, position } if record.stream == StreamKind::Bid => {
                    forged_click(record).map(|click| Arrival::Event {
                        record: Record::from(Event::Click(click)),
                        position: *position,
                    })
                }
                _ => None,
            };
            std::iter::once(arrival).chain(click)
        });
        partitions.push(forged.collect());
    }
    Ok(MemorySource::new(partitions))
}

/// The click forged on `bid`, if any: half of the farm publisher's bids and every 500th bid.
fn forged_click(bid: &Record) -> Option<Click> {
    let bids = Schema::funnel().stream(StreamKind::Bid);
    let publisher = bids.get(bid, bids.index("publisher_id")?);
    let farmed = publisher == Value::Id(FARM_PUBLISHER) && bid.id.is_multiple_of(2);
    (farmed || bid.id.is_multiple_of(500)).then_some(Click {
        click_id: FORGED_ID_BASE + bid.id,
        bid_id: bid.id,
        ts: bid.ts + 500,
    })
}
